# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight role's verdict on a node, from the gpunode_preflight fact.

Kept in Python, not in a Jinja list in vars/, so that every refusal is unit-tested.
"""

from __future__ import absolute_import, division, print_function

from ansible.module_utils.parsing.convert_bool import boolean


def _problems(facts, supported_os, architectures, require_systemd, min_gpus):
    osr = facts.get("os") or {}
    problems = []
    allowed = [str(v) for entry in supported_os if entry.get("id") == osr.get("id") for v in entry.get("major_versions") or []]
    if str(osr.get("major_version")) not in allowed:
        supported = ", ".join("%s %s" % (e.get("id"), "/".join(str(v) for v in e.get("major_versions") or [])) for e in supported_os)
        problems.append(
            "unsupported OS %s (id %s, version %s); supported: %s. Extend preflight_supported_os only to try a release"
            " we do not test." % (osr.get("name") or osr.get("id"), osr.get("id"), osr.get("version"), supported))
    if facts.get("architecture") not in architectures:
        problems.append("unsupported architecture %s; supported: %s" % (facts.get("architecture"), ", ".join(architectures)))
    init = facts.get("init") or {}
    if boolean(require_systemd) and not init.get("systemd"):
        problems.append(
            "systemd is not the init system (PID 1 is %s): the driver, toolkit and containerd roles manage systemd units."
            " Boot the node with systemd, or set preflight_require_systemd: false for a read-only run." % init.get("pid1"))
    gpus = (facts.get("gpus") or {}).get("count") or 0
    if gpus < int(min_gpus):
        problems.append(
            "found %d NVIDIA GPU(s) on the PCI bus, preflight_min_gpus is %s: check the cards are seated and visible"
            " (lspci -d 10de:)." % (gpus, min_gpus))
    return problems


def _summary(facts):
    osr = facts.get("os") or {}
    kernel = facts.get("kernel") or {}
    loaded = (facts.get("driver") or {}).get("loaded")
    secure_boot = (facts.get("secure_boot") or {}).get("enabled")
    return {
        "os": "%s %s" % (osr.get("id"), osr.get("version")),
        "arch": facts.get("architecture"),
        "gpus": (facts.get("gpus") or {}).get("count"),
        "nvswitches": (facts.get("nvswitches") or {}).get("count"),
        "driver": loaded.get("version") if loaded else "-",
        "headers": "installed" if kernel.get("headers_installed") else ("installable" if kernel.get("headers_available") else "missing"),
        "secure_boot": {True: "on", False: "off"}.get(secure_boot, "unknown"),
    }


def preflight_verdict(facts, supported_os, supported_architectures, require_systemd, min_gpus):
    verdict = dict(facts)
    verdict["problems"] = _problems(facts, supported_os, supported_architectures, require_systemd, min_gpus)
    verdict["summary"] = _summary(facts)
    return verdict


def preflight_repair_report(result):
    """What the package_repair task waited for and repaired, with the one line the run report prints."""
    result = result or {}
    commands = [c.get("command") for c in result.get("commands") or []]
    parts = []
    if result.get("waited_s") and result.get("waited_for"):
        parts.append("waited %ss for %s" % (result["waited_s"], ", ".join(result["waited_for"])))
    if result.get("repaired"):
        parts.append("repaired %s with %s" % (result["repaired"], " && ".join(commands)))
    return {
        "waited_s": result.get("waited_s") or 0,
        "waited_for": list(result.get("waited_for") or []),
        "repaired": result.get("repaired") or "",
        "commands": commands,
        "line": "; ".join(parts),
    }


class FilterModule(object):
    def filters(self):
        return {"preflight_verdict": preflight_verdict, "preflight_repair_report": preflight_repair_report}
