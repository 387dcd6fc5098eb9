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
import hashlib

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


def drift(plan_result, change, state, result, *, inputs, files, rendered, persistenced):
    """Why the driver role must run its install, configure and verify steps here: empty when the node
    already is what they would leave (a converged re-run takes the fast path and only publishes).

    ``state`` is driver_state's read with every file of ``files`` in ``checksums``; ``result`` is
    :func:`outcome` on that read; ``files`` ({src, dest, mode}) are what the role's tasks would write
    from templates, ``rendered`` their text as the controller renders it now. Every reason names a
    state that was read: what was not read (a dnf module stream, version locks) is never assumed.
    """
    reasons = []
    preinstalled = plan_result["source"] == "preinstalled"
    if not preinstalled and plan_result.get("package_manager") != "apt":
        reasons.append("%s: the module stream and version locks are not part of the read" % plan_result.get("package_manager"))
    if change.get("install_needed"):
        reasons.append("packages to install or change: %s" % ", ".join(change.get("install") or []))
    if change.get("services_to_cycle"):
        reasons.append("services to stop and start: %s" % ", ".join(change["services_to_cycle"]))
    if (change.get("venv") or {}).get("install"):
        reasons.append("the NVML venv to install or update")
    for key, why in (("rebuild", "the module to build for the target kernel"), ("reload", "the module to load")):
        if result.get(key):
            reasons.append(why)
    if result.get("to_hold"):
        reasons.append("packages to hold: %s" % ", ".join(result["to_hold"]))
    reasons.extend("verification: %s" % p for p in result.get("problems") or [])
    if result["reboot"].get("required") or result["reboot"].get("reboot"):
        reasons.append("reboot: %s" % result["reboot"].get("reason"))
    reasons.extend(_unit_drift(plan_result, state, result, preinstalled=preinstalled, persistenced=persistenced))
    checksums = state.get("checksums") or {}
    for spec, text in zip(files, rendered):
        found = checksums.get(spec["dest"])
        if not isinstance(text, str):  # a lookup that made data of the text: nothing to compare
            reasons.append("%s could not be compared" % spec["dest"])
            continue
        wanted = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if not found:
            reasons.append("%s to write" % spec["dest"])
        elif (found["sha256"], found["mode"], found["uid"], found["gid"]) != (wanted, spec["mode"], 0, 0):
            reasons.append("%s differs from what the role writes" % spec["dest"])
    if len(rendered) != len(files):
        reasons.append("the role's templates were not all rendered")
    reasons.extend(_key_drift(plan_result, checksums))
    return reasons


def _unit_drift(plan_result, state, result, *, preinstalled, persistenced):
    units = []
    if persistenced and not preinstalled:
        units.append(plan_result["services"]["persistenced"])
    if plan_result.get("fabricmanager") is not None:
        units.append(plan_result["services"]["fabricmanager"])
    reasons = []
    for unit in units:
        seen = (state.get("services") or {}).get(unit) or {}
        if seen.get("enabled") != "enabled":
            reasons.append("%s to enable (%s)" % (unit, seen.get("enabled")))
        if result.get("in_place") and seen.get("active") != "active":
            reasons.append("%s to start (%s)" % (unit, seen.get("active")))
    return reasons


def _key_drift(plan_result, checksums):
    """The repository key get_url keeps: present, and with the checksum asked for when one is."""
    repo = plan_result.get("repository")
    if not repo or not repo.get("key_file"):
        return []
    found = checksums.get(repo["key_file"])
    if not found:
        return ["%s to fetch" % repo["key_file"]]
    algorithm, _sep, digest = (repo.get("key_checksum") or "").partition(":")
    if algorithm and (algorithm.lower() != "sha256" or digest.lower() != found["sha256"]):
        return ["%s to fetch again (checksum %s)" % (repo["key_file"], repo["key_checksum"])]
    return []
