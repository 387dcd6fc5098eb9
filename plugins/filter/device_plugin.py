# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device_plugin role's decisions: its Kubernetes objects, what it refuses, what it publishes.

The builder is plugins/plugin_utils/k8s_device_plugin.py (tests/unit/plugins/plugin_utils/test_k8s_device_plugin.py).
"""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_device_plugin


def device_plugin_objects(settings, cluster):
    return k8s_device_plugin.objects(settings, cluster)


def device_plugin_problems(settings, cluster):
    return k8s_device_plugin.problems(settings, cluster)


def device_plugin_published(settings, cluster):
    return k8s_device_plugin.published(settings, cluster)


class FilterModule(object):
    def filters(self):
        return {
            "device_plugin_objects": device_plugin_objects,
            "device_plugin_problems": device_plugin_problems,
            "device_plugin_published": device_plugin_published,
        }
