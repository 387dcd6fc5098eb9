# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judging the installed driver, on the controller, after the driver role's
install step: holds, the DKMS and module-file verification, and the reboot
decision, from the plan (driver_plan.py), the changes (driver_changes.py) and
what ``driver_state`` read afterwards.
"""

from __future__ import absolute_import, division, print_function

import fnmatch

from ansible_collections.gpunode.nvidia.plugins.plugin_utils.driver_common import upstream


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _dkms_entries(state, kernel):
    return [e for e in (state.get("dkms") or []) if e.get("kernel") == kernel and (e.get("module") or "").startswith("nvidia")]


def outcome(plan_result, change, state, *, facts, inputs, changed):
    """Holds, verification and the reboot decision, from the state after installing.

    ``changed`` says whether this run changed driver packages, the nouveau
    blacklist or the module signing set-up.
    """
    problems, checks = [], []
    kernel = plan_result.get("kernel")
    installed = state.get("packages") or {}
    if plan_result["source"] == "preinstalled":
        return _outcome_preinstalled(plan_result, state, facts, inputs)
    primary = change["locked"][0]
    version = upstream(installed.get(primary))
    if not version:
        problems.append("%s is not installed after the install step" % primary)
    elif plan_result.get("version") and version != plan_result["version"]:
        problems.append("%s is at %s, not the pinned %s" % (primary, version, plan_result["version"]))
    else:
        checks.append("%s %s installed" % (primary, version))
    for name in change["locked"]:
        if name in installed and upstream(installed[name]) != version:
            problems.append("%s is at %s, not %s like %s: driver packages split" % (name, installed[name], version, primary))

    # Holds: every installed package of this driver version, plus companions.
    held_wanted = sorted(
        set(n for n, v in installed.items() if _matches(n, plan_result["patterns"]) and upstream(v) == version)
        | set(n for n in change["locked"] + change["companions"] if n in installed)
    )
    to_hold = [n for n in held_wanted if n not in (state.get("held") or [])] if inputs.get("hold_packages", True) else []

    modules = (state.get("modules") or {}).get(kernel) or []
    module = modules[0] if modules else None
    dkms_entries = _dkms_entries(state, kernel)
    dkms_ok = [e for e in dkms_entries if e.get("state") == "installed" and e.get("version") == version]
    rebuild = change["build"] == "dkms" and version is not None and not dkms_ok
    if change["build"] == "dkms":
        if dkms_ok:
            checks.append("dkms: %s" % dkms_ok[0]["detail"])
        else:
            problems.append(
                "dkms has no installed nvidia module %s for kernel %s (status: %s)"
                % (version, kernel, "; ".join(e["detail"] for e in dkms_entries) or "nothing for this kernel")
            )
    if not module:
        problems.append("no NVIDIA kernel module file for kernel %s under /lib/modules/%s" % (kernel, kernel))
    elif module.get("built_for") != kernel:
        problems.append("%s has vermagic %r, not kernel %s" % (module["path"], module.get("vermagic"), kernel))
    elif module.get("version") != version:
        problems.append("%s is version %s, not %s" % (module["path"], module.get("version"), version))
    else:
        checks.append("modinfo %s: version %s, vermagic %s" % (module["path"], module["version"], module["vermagic"]))
    smi = (state.get("commands") or {}).get("nvidia-smi")
    if smi:
        checks.append("nvidia-smi at %s" % smi)
    else:
        problems.append("nvidia-smi is not installed")
    nvml_lib = state.get("nvml_library") or {}
    if nvml_lib.get("version") and version and nvml_lib["version"] != version:
        problems.append("the loader finds NVML %s at %s, not %s" % (nvml_lib["version"], nvml_lib.get("path"), version))

    loaded = state.get("loaded")
    in_place = loaded and loaded.get("version") == version and loaded.get("kernel_module_type") == plan_result.get("module_type")
    smi = state.get("nvidia_smi") or {}
    if in_place and smi:
        if smi.get("rc") == 0:
            checks.append("nvidia-smi sees %d GPU(s) on driver %s" % (len(smi.get("gpus") or []), version))
        else:
            problems.append("driver %s is loaded but nvidia-smi fails: %s" % (version, smi.get("error")))
    nouveau = ((facts.get("modules") or {}).get("nouveau")) is True
    reload = bool(
        inputs.get("reload_modules", True)
        and plan_result.get("gpus")
        and not plan_result.get("container")
        and not nouveau
        and version
        and kernel == plan_result.get("running_kernel")
        and not in_place
    )
    decision = reboot_decision(plan_result, state, facts=facts, inputs=inputs, changed=changed, version=version)
    return {
        "in_place": bool(in_place),
        "reload": reload,
        "version": version,
        "branch": version.split(".")[0] if version else plan_result.get("branch"),
        "module": module,
        "to_hold": to_hold,
        "held": held_wanted if inputs.get("hold_packages", True) else [],
        "rebuild": rebuild,
        "checks": checks,
        "problems": problems,
        "reboot": decision,
    }


def _outcome_preinstalled(plan_result, state, facts, inputs):
    problems, checks = [], []
    loaded = state.get("loaded")
    gpus = plan_result.get("gpus", 0)
    running = plan_result.get("running_kernel")
    modules = (state.get("modules") or {}).get(running) or []
    nvml_lib = state.get("nvml_library") or {}
    version = (loaded or {}).get("version") or (modules[0].get("version") if modules else None) or nvml_lib.get("version")
    if loaded:
        checks.append("running driver %s (%s kernel module)" % (loaded.get("version"), loaded.get("kernel_module_type")))
    elif gpus:
        problems.append("no NVIDIA driver is loaded on a node with %d GPU(s) (no /proc/driver/nvidia/version)" % gpus)
    if not version:
        problems.append("driver_source preinstalled, but no NVIDIA driver is loaded or installed for kernel %s" % running)
    if version and plan_result.get("version") and version != plan_result["version"]:
        problems.append("the preinstalled driver is %s, not driver_version %s" % (version, plan_result["version"]))
    if version and plan_result.get("branch") and version.split(".")[0] != plan_result["branch"]:
        problems.append("the preinstalled driver %s is not in driver_branch %s" % (version, plan_result["branch"]))
    wanted_type = inputs.get("kernel_module_type", "auto")
    if loaded and wanted_type != "auto" and loaded.get("kernel_module_type") != wanted_type:
        problems.append("the running driver uses the %s kernel module, not %s" % (loaded.get("kernel_module_type"), wanted_type))
    if nvml_lib.get("version"):
        if version and nvml_lib["version"] != version:
            problems.append("NVML library %s at %s does not match the driver %s" % (nvml_lib["version"], nvml_lib.get("path"), version))
        else:
            checks.append("NVML library %s at %s" % (nvml_lib["version"], nvml_lib.get("path")))
    smi = state.get("nvidia_smi") or {}
    if gpus and smi:
        seen = sorted(set(g["driver_version"] for g in smi.get("gpus") or []))
        if smi.get("rc") != 0:
            problems.append("nvidia-smi failed: %s" % smi.get("error"))
        elif version and seen != [version]:
            problems.append("nvidia-smi reports driver %s, not %s" % (", ".join(seen), version))
        else:
            checks.append("nvidia-smi sees %d GPU(s): %s" % (len(smi["gpus"]), ", ".join(g["name"] for g in smi["gpus"])))
    return {
        "in_place": bool(loaded),
        "reload": False,
        "version": version,
        "branch": version.split(".")[0] if version else None,
        "module": modules[0] if modules else None,
        "to_hold": [],
        "held": [],
        "rebuild": False,
        "checks": checks,
        "problems": problems,
        "reboot": {"required": False, "reboot": False, "reason": "driver_source preinstalled never reboots", "suppressed": None},
    }


def reboot_decision(plan_result, state, *, facts, inputs, changed, version):
    """Whether the module that should run is the one loaded, and what the policy does about it.

    Returns required (a reboot would change what runs), reboot (do it now),
    reason, and suppressed (why a wanted reboot does not happen here).
    """
    policy = inputs.get("reboot", "if_needed")
    loaded = state.get("loaded")
    kernel, running = plan_result.get("kernel"), plan_result.get("running_kernel")
    nouveau = ((facts.get("modules") or {}).get("nouveau")) is True
    reasons = []
    if not plan_result.get("gpus"):
        required = False
        reasons.append("no NVIDIA GPU on the PCI bus: there is no module to load")
    else:
        if nouveau:
            reasons.append("nouveau is loaded; the blacklist takes effect at boot")
        if kernel != running:
            reasons.append("the module is built for kernel %s and the node runs %s" % (kernel, running))
        if not loaded:
            reasons.append("no NVIDIA module is loaded")
        elif version and loaded.get("version") != version:
            reasons.append("the loaded module is %s, the installed driver %s" % (loaded.get("version"), version))
        elif loaded.get("kernel_module_type") != plan_result.get("module_type"):
            reasons.append("the loaded module is %s, the installed one %s" % (loaded.get("kernel_module_type"), plan_result.get("module_type")))
        required = bool(reasons)
        if not required:
            reasons.append("the loaded module is the installed %s" % version)
    want = (policy == "if_needed" and required) or (policy == "always" and (changed or required))
    if policy == "always" and changed and not required:
        reasons.append("driver_reboot always: this run changed the driver")
    suppressed = None
    if want and plan_result.get("container"):
        suppressed = "the node is a container (%s): reboot its host instead" % ((facts.get("virtualization") or {}).get("container"))
    elif policy == "never" and required:
        suppressed = "driver_reboot is never: reboot the node yourself (drain it first)"
    return {
        "policy": policy,
        "required": required,
        "reboot": bool(want and not suppressed),
        "reason": "; ".join(reasons),
        "suppressed": suppressed,
    }
