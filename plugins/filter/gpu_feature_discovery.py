# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu_feature_discovery role's decisions: its objects, what it refuses, what it publishes.

The builder is plugins/plugin_utils/k8s_gpu_feature_discovery.py (tests:
tests/unit/plugins/plugin_utils/test_k8s_gpu_feature_discovery.py).
"""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_gpu_feature_discovery as gfd


def gpu_feature_discovery_objects(settings, cluster):
    return gfd.objects(settings, cluster)


def gpu_feature_discovery_problems(settings, cluster):
    return gfd.problems(settings, cluster)


def gpu_feature_discovery_published(settings, cluster):
    return gfd.published(settings, cluster)


class FilterModule(object):
    def filters(self):
        return {
            "gpu_feature_discovery_objects": gpu_feature_discovery_objects,
            "gpu_feature_discovery_problems": gpu_feature_discovery_problems,
            "gpu_feature_discovery_published": gpu_feature_discovery_published,
        }
