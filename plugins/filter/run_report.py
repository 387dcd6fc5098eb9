# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml's record of where a node failed, for the run report (plugin_utils/run_report.py)."""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils.run_report import failure_record


def run_failure(failed_task, failed_result, facts):
    return failure_record(failed_task, failed_result, facts)


class FilterModule(object):
    def filters(self):
        return {"run_failure": run_failure}
