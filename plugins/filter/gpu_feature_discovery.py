# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu_feature_discovery role's decisions: its objects, what it refuses, what it publishes.

The builder is plugins/plugin_utils/k8s_gpu_feature_discovery.py (tests:
tests/unit/plugins/plugin_utils/test_k8s_gpu_feature_discovery.py).
"""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_gpu_feature_discovery as gfd
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects


def gpu_feature_discovery_objects(settings, cluster):
    return gfd.objects(settings, cluster)


def gpu_feature_discovery_problems(settings, cluster):
    return gfd.problems(settings, cluster)


def gpu_feature_discovery_published(settings, cluster):
    return gfd.published(settings, cluster)


def gpu_feature_discovery_nfd(choice, crd_result):
    """auto -> existing where the cluster has NFD's NodeFeature CRD and it is not ours, else deploy.

    ``crd_result``: kubernetes.core.k8s_info of the CRD nodefeatures.nfd.k8s-sigs.io ({} or skipped
    when nothing was read, as in render mode, where auto deploys).
    """
    if choice != "auto":
        return choice
    for crd in (crd_result or {}).get("resources") or []:
        labels = (crd.get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") != k8s_objects.MANAGER:
            return "existing"
    return "deploy"


class FilterModule(object):
    def filters(self):
        return {
            "gpu_feature_discovery_nfd": gpu_feature_discovery_nfd,
            "gpu_feature_discovery_objects": gpu_feature_discovery_objects,
            "gpu_feature_discovery_problems": gpu_feature_discovery_problems,
            "gpu_feature_discovery_published": gpu_feature_discovery_published,
        }
