# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device_plugin role's decisions: its Kubernetes objects, what it refuses, what it publishes.

The builder is plugins/plugin_utils/k8s_device_plugin.py (tests/unit/plugins/plugin_utils/test_k8s_device_plugin.py).
"""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_device_plugin, k8s_objects


def device_plugin_objects(settings, cluster):
    return k8s_device_plugin.objects(settings, cluster)


def device_plugin_problems(settings, cluster):
    return k8s_device_plugin.problems(settings, cluster)


def device_plugin_published(settings, cluster):
    return k8s_device_plugin.published(settings, cluster)


def device_plugin_node_configs(hostvars, cluster, var="device_plugin_node_config"):
    """{Kubernetes node name: config name} from each GPU host's device_plugin_node_config (empty: none)."""
    found = {}
    for host, node in sorted((cluster.get("nodes") or {}).items()):
        try:
            name = hostvars[host].get(var)
        except (KeyError, AttributeError, TypeError):
            name = None
        if name:
            found[node["node_name"]] = name
    return found


def device_plugin_node_labels(settings, cluster):
    """Partial Node objects that set each configured GPU node's nvidia.com/device-plugin.config (apply mode)."""
    if cluster.get("mode") != "apply":
        return []
    names = dict((n["node_name"], n) for n in (cluster.get("nodes") or {}).values())
    return k8s_objects.node_label_patches(dict(
        (node, {"gpus": (names.get(node) or {}).get("gpus", 1), "config": config})
        for node, config in sorted((settings.get("node_configs") or {}).items())))


class FilterModule(object):
    def filters(self):
        return {
            "device_plugin_node_configs": device_plugin_node_configs,
            "device_plugin_node_labels": device_plugin_node_labels,
            "device_plugin_objects": device_plugin_objects,
            "device_plugin_problems": device_plugin_problems,
            "device_plugin_published": device_plugin_published,
        }
