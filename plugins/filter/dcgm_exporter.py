# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters through which the dcgm_exporter role builds its objects; the logic is in
plugins/plugin_utils/k8s_dcgm_exporter.py."""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_dcgm_exporter


def dcgm_exporter_objects(settings, cluster):
    return k8s_dcgm_exporter.objects(settings, cluster)


def dcgm_exporter_problems(settings, cluster):
    return k8s_dcgm_exporter.problems(settings, cluster)


def dcgm_exporter_published(settings, cluster):
    return k8s_dcgm_exporter.published(settings, cluster)


class FilterModule(object):
    """settings | dcgm_exporter_objects(cluster); settings | dcgm_exporter_problems(cluster);
    settings | dcgm_exporter_published(cluster)."""

    def filters(self):
        return {
            "dcgm_exporter_objects": dcgm_exporter_objects,
            "dcgm_exporter_problems": dcgm_exporter_problems,
            "dcgm_exporter_published": dcgm_exporter_published,
        }
