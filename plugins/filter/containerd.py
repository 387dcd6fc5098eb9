# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The containerd role's decisions: what it refuses on a node, and what it publishes.

The role registers containerd_runtime's result (which already carries what
`containerd config dump` showed), the unit's state and, after a restart,
`ctr version`; these filters turn them into the fact gpunode_containerd
(docs/contract.md) with its problems. Kept in Python so each verdict is tested.
"""

from __future__ import absolute_import, division, print_function

FAMILIES = ("Debian", "RedHat")


def containerd_node_problems(facts):
    """Why the containerd role cannot manage this node (from gpunode_preflight), one line each."""
    problems = []
    init = facts.get("init") or {}
    osr = facts.get("os") or {}
    if not init.get("systemd"):
        problems.append("systemd is not the init system (PID 1 is %s): this role manages the containerd unit." % init.get("pid1"))
    if osr.get("family") not in FAMILIES:
        problems.append("no containerd package data for OS family %s (%s)." % (osr.get("family"), osr.get("id")))
    return problems


def _binary_missing_text(settings):
    return ("runtime binary %s is missing: containerd has the %s runtime, but containers that use it will fail until the"
            " NVIDIA container toolkit is installed." % (settings["binary"], settings["name"]))


def _binary_missing(result, settings):
    return settings["state"] == "present" and result.get("binary_exists") is False


def _active_state(unit, ctr):
    """The unit's ActiveState after this run, or None where it was not read.

    The systemd module returns the status it found, before it started the unit: a unit
    this run started is active once containerd answered `ctr version` after the start.
    """
    status = (unit or {}).get("status") or {}
    if not status:
        return None
    if (unit or {}).get("changed") and ctr and not ctr.get("skipped") and ctr.get("rc") == 0:
        return "active"
    return status.get("ActiveState")


def _problems(result, unit, ctr, settings, runtime):
    binary_missing = _binary_missing(result, settings)
    problems = []
    status = (unit or {}).get("status") or {}
    if _active_state(unit, ctr) not in (None, "active"):
        problems.append("containerd is %s (%s): see journalctl -u containerd." % (status.get("ActiveState"), status.get("SubState")))
    if ctr and not ctr.get("skipped") and ctr.get("rc") != 0:
        problems.append("containerd does not answer on %s (ctr version): %s" % (settings["socket"], (ctr.get("stderr") or ctr.get("msg") or "").strip()))
    if settings["state"] != "present" or "effective" not in result:
        return problems + ([_binary_missing_text(settings)] if binary_missing and settings["binary_required"] else [])
    options = (runtime or {}).get("options") or {}
    if runtime is None:
        problems.append("containerd config dump has no runtime %s." % settings["name"])
    elif options.get("BinaryName", "") != settings["binary"]:
        problems.append("runtime %s has BinaryName %s in containerd config dump, not %s."
                        % (settings["name"], options.get("BinaryName") or "none", settings["binary"]))
    cgroup = settings["cgroup_driver"]
    if runtime is not None and cgroup != "keep" and bool(options.get("SystemdCgroup", False)) != (cgroup == "systemd"):
        problems.append("runtime %s does not have SystemdCgroup = %s in containerd config dump." % (settings["name"], cgroup == "systemd"))
    if binary_missing and settings["binary_required"]:
        problems.append(_binary_missing_text(settings))
    return problems


def containerd_published(result, unit, ctr, settings):
    """gpunode_containerd from containerd_runtime's registered result, the unit's state and `ctr version`.

    ``settings``: name, state, binary, binary_required, cgroup_driver, socket,
    default_runtime_options (what the role asked for).
    """
    result = result or {}
    effective = result.get("effective") or {}
    runtime = effective.get("runtime") if "effective" in result else None
    present = settings["state"] == "present"
    binary_missing = _binary_missing(result, settings)
    options = (runtime or {}).get("options") or {}
    return {
        "version": result.get("containerd_version"),
        "config_version": result.get("config_version"),
        "config_path": result.get("config_path"),
        "dropin_path": result.get("dropin_path"),
        "plugin_id": result.get("plugin_id"),
        "changed": bool(result.get("changed")),
        # Read from `containerd config dump` in this run (false in check mode with changes pending).
        "checked": "effective" in result,
        "active": _active_state(unit, ctr),
        "runtime": {
            "name": settings["name"] if present else None,
            "state": settings["state"],
            "binary": settings["binary"],
            "binary_exists": result.get("binary_exists"),
            "runtime_type": (runtime or {}).get("runtime_type") or (result.get("runtime") or {}).get("runtime_type"),
            "options": options,
            "default_runtime_options": settings.get("default_runtime_options") or {},
        },
        "default_runtime_name": effective.get("default_runtime_name"),
        "cdi_enabled": effective.get("enable_cdi"),
        "cdi_spec_dirs": effective.get("cdi_spec_dirs"),
        "systemd_cgroup": options.get("SystemdCgroup"),
        "problems": _problems(result, unit, ctr, settings, runtime),
        "warnings": [_binary_missing_text(settings)] if binary_missing and not settings["binary_required"] else [],
    }


class FilterModule(object):
    def filters(self):
        return {"containerd_node_problems": containerd_node_problems, "containerd_published": containerd_published}
