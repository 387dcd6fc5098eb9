# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters through which the driver role decides; the logic is in plugin_utils:
driver_plan.py (the plan), driver_changes.py (the query and the changes),
driver_outcome.py (judging the installed driver)."""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_changes, driver_outcome, driver_plan


class FilterModule(object):
    """inputs | driver_plan(os, family, facts); plan | driver_query;
    plan | driver_changes(state, inputs, family); plan | driver_outcome(changes, state, facts, inputs, changed);
    plan | driver_drift(changes, state, outcome, inputs, files, rendered, persistenced)."""

    def filters(self):
        return {
            "driver_plan": driver_plan.plan,
            "driver_query": driver_changes.query,
            "driver_changes": driver_changes.changes,
            "driver_outcome": driver_outcome.outcome,
            "driver_drift": driver_outcome.drift,
        }
