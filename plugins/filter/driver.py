# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters through which the driver role decides; the logic is in plugin_utils/driver_plan.py."""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan


class FilterModule(object):
    """inputs | driver_plan(os, family, facts); plan | driver_query;
    plan | driver_changes(state, inputs, family); plan | driver_outcome(changes, state, facts, inputs, changed)."""

    def filters(self):
        return {
            "driver_plan": driver_plan.plan,
            "driver_query": driver_plan.query,
            "driver_changes": driver_plan.changes,
            "driver_outcome": driver_plan.outcome,
        }
