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
    """Partial Node objects, one per GPU node, with its nvidia.com/device-plugin.config where it has one (apply mode).

    Every GPU node gets one, also without a config: server-side apply drops a label only when the
    same field manager applies the node again without it, so a config taken away is removed.
    """
    if cluster.get("mode") != "apply":
        return []
    configs = settings.get("node_configs") or {}
    return k8s_objects.node_label_patches(dict(
        (n["node_name"], {"gpus": n["gpus"], "config": configs.get(n["node_name"], "")})
        for n in (cluster.get("nodes") or {}).values()))


class FilterModule(object):
    def filters(self):
        return {
            "device_plugin_node_configs": device_plugin_node_configs,
            "device_plugin_node_labels": device_plugin_node_labels,
            "device_plugin_objects": device_plugin_objects,
            "device_plugin_problems": device_plugin_problems,
            "device_plugin_published": device_plugin_published,
        }
