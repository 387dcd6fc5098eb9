# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What changes on a node, decided on the controller from the driver role's plan
(plugin_utils/driver_plan.py) and what the ``driver_state`` module read.

- :func:`query`: what driver_state reads for a plan.
- :func:`changes`: what is missing, whether the installed driver changes
  version, who holds the GPU, Secure Boot readiness, what the NVML venv gets
  (:func:`venv`).
"""

from __future__ import absolute_import, division, print_function

from ansible_collections.gpunode.nvidia.plugins.plugin_utils.driver_common import fmt, upstream


def query(plan_result):
    """What the driver_state module should read for this plan."""
    names = list(plan_result.get("patterns") or [])
    for key in ("companions", "headers"):
        names.extend(plan_result.get(key) or [])
    for key in ("dkms", "precompiled"):
        data = plan_result.get(key) or {}
        names.extend(data.get("locked") or [])
        if data.get("module_package"):
            names.append(data["module_package"])
    names.extend((plan_result.get("fabricmanager") or {}).get("packages") or [])
    names.extend((plan_result.get("nvml") or {}).get("packages") or [])
    kernels = [k for k in (plan_result.get("kernel"), plan_result.get("running_kernel")) if k]
    precompiled = plan_result.get("precompiled") or {}
    sb = plan_result.get("secure_boot") or {}
    files = [p for p in (sb.get("key"), sb.get("cert")) if p and (sb.get("enabled") or sb.get("user_provided"))]
    files += [plan_result["initramfs_image"]] if plan_result.get("initramfs_image") else []
    return {
        "packages": _unique(names),
        "available": _unique(
            ([precompiled["module_package"]] if precompiled.get("module_package") else [])
            + list(plan_result.get("headers") or [])
            + list(plan_result.get("build_requires") or [])
        ),
        "kernels": sorted(set(kernels)),
        "files": files,
        "mok_certificate": sb.get("cert") if sb.get("enabled") else None,
        "nvml_python": (plan_result.get("nvml") or {}).get("python") or None,
        "nvml_python_base": (plan_result.get("nvml") or {}).get("base") or None,
        "nvidia_smi": bool(plan_result.get("gpus")),
    }


def _unique(names):
    seen, unique = set(), []
    for name in names:
        if name and name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


# The oldest Python that cuda-bindings has wheels for (none for 3.8 and older).
CUDA_BINDINGS_MIN_PYTHON = (3, 9)


def pin_matches(installed, pin):
    """Whether an installed version satisfies the version after a requirement's ``==``
    (``12.*`` is a prefix). No pin or nothing installed: no (pip decides each run)."""
    if not installed or not pin:
        return False
    if pin.endswith(".*"):
        return installed.startswith(pin[:-1])
    return installed == pin


def _python_tuple(version):
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except (AttributeError, ValueError):
        return None


def venv(plan_result, state, inputs):
    """What the NVML venv gets: whether to run pip (``install``: something missing or
    off its pin), the pip ``requirements``, the cuda-bindings requirement and, where
    the role installs no binding, why (``cuda_bindings_skipped``)."""
    nvml = plan_result.get("nvml") or {}
    if nvml.get("install") != "venv":
        why = "driver_source preinstalled installs nothing" if plan_result.get("source") == "preinstalled" else (
            "driver_nvml_install %s: cuda-bindings goes only into the role's venv" % nvml.get("install"))
        return {"install": False, "requirements": [], "cuda_bindings": None, "cuda_bindings_skipped": why}
    probe = state.get("nvml_python") or {}
    package = inputs.get("nvml_package") or "nvidia-ml-py"
    install = not pin_matches(probe.get("version"), package.split("==", 1)[1].strip() if "==" in package else "")
    requirements, skipped = [package], None
    wanted = nvml.get("cuda_bindings")
    python = _python_tuple(probe.get("python"))
    if not wanted:
        skipped = "driver_cuda_bindings_package: none"
    elif python and python < CUDA_BINDINGS_MIN_PYTHON:
        skipped = "Python %s (%s) is too old for cuda-bindings (wheels from %d.%d)" % (
            probe["python"], probe.get("path") if probe.get("exists") else nvml.get("base"), CUDA_BINDINGS_MIN_PYTHON[0], CUDA_BINDINGS_MIN_PYTHON[1])
    else:
        requirements.append(wanted["requirement"])
        install = install or not pin_matches(probe.get("cuda_bindings"), wanted["pin"])
    return {
        "install": install,
        "requirements": requirements,
        "cuda_bindings": None if skipped else wanted["requirement"],
        "cuda_bindings_skipped": skipped,
    }


def version_spec(family, name, version):
    """How the package manager asks for ``name`` at driver ``version``."""
    return fmt(family["version_spec"], name=name, version=version) if version else name


def changes(plan_result, state, inputs, family):
    """What must change on the node, from the plan and the first state read."""
    problems, notes = [], []
    installed = state.get("packages") or {}
    available = state.get("available") or {}
    result = {"problems": problems, "notes": notes, "venv": venv(plan_result, state, inputs)}
    if plan_result["source"] == "preinstalled":
        result.update({"build": None, "install_needed": False, "changing": False, "install": [], "locked": [], "services_to_cycle": []})
        return result
    precompiled = plan_result.get("precompiled")
    mode = inputs.get("precompiled_modules", "auto")
    build, chosen = "dkms", plan_result["dkms"]
    if precompiled and (mode == "always" or available.get(precompiled["module_package"]) or precompiled["module_package"] in installed):
        build, chosen = "precompiled", precompiled
    elif precompiled and mode == "auto":
        notes.append("no precompiled module package %s for this kernel: building with DKMS" % precompiled["module_package"])
    locked = list(chosen["locked"]) + list((plan_result.get("fabricmanager") or {}).get("packages") or [])
    companions = list(plan_result.get("companions") or [])
    if chosen.get("module_package"):
        companions.append(chosen["module_package"])
    headers = list(plan_result.get("headers") or []) if build == "dkms" else []
    extra = list((plan_result.get("nvml") or {}).get("packages") or [])
    primary = locked[0]
    installed_version = upstream(installed.get(primary))
    # The driver already on the node, whichever package brought it: the NVML
    # library's file name and the running module carry its version too.
    previous = installed_version or (state.get("nvml_library") or {}).get("version") or (state.get("loaded") or {}).get("version")
    wanted = plan_result.get("version") or None
    changing = bool(
        previous and (installed_version != previous or (wanted and previous != wanted) or previous.split(".")[0] != plan_result["branch"])
    )
    stale = [n for n in locked if wanted and n in installed and upstream(installed[n]) != wanted]
    missing = [n for n in locked + companions + headers + extra if n not in installed]
    install_needed = bool(missing or stale or (wanted and installed_version != wanted))
    install = [version_spec(family, n, wanted) for n in locked] + companions + headers + extra

    services = list(inputs.get("gpu_services") or [])
    units = set(s if "." in s else s + ".service" for s in services)
    users = state.get("processes") or []
    blockers = [p for p in users if p.get("unit") not in units]
    if changing and blockers and not inputs.get("force"):
        problems.append(
            "refusing to change the driver from %s to %s while processes use the GPU (set driver_force: true to go ahead):\n%s"
            % (
                previous,
                wanted or "branch %s" % plan_result["branch"],
                "\n".join(
                    "    pid %s %s (%s) holds %s" % (p["pid"], p.get("comm"), p.get("unit") or "no unit", ", ".join(p.get("devices") or []))
                    for p in blockers
                ),
            )
        )
    states = state.get("services") or {}
    cycle = [s for s in services if changing and (states.get(s) or {}).get("active") in ("active", "activating", "reloading")]
    problems.extend(_secure_boot_problems(plan_result, state, build))
    if build == "dkms" and (plan_result.get("secure_boot") or {}).get("enabled") is None:
        notes.append("Secure Boot state unknown (efivars not readable here); if it is on, see driver_secure_boot_mok_key")
    headers_ok = (state.get("headers") or {}).get(plan_result.get("kernel"))
    unavailable = [h for h in headers if h not in installed and available.get(h) is False]
    # EL: dkms itself comes from EPEL, which the role does not set up.
    for name in plan_result.get("build_requires") or [] if build == "dkms" else []:
        if name not in installed and available.get(name) is False:
            problems.append(
                "%s is not installable from the enabled repositories: enable EPEL (dnf install epel-release, and on RHEL"
                " the CodeReady Builder repository) or a mirror that carries it" % name
            )
    if build == "dkms" and not headers_ok and unavailable:
        problems.append(
            "no build headers for kernel %s: %s is not installed and the package cache does not offer it. The node may run a"
            " kernel its distribution has no headers for (a VM's or container host's own kernel): set driver_kernel_release to a"
            " kernel whose headers exist (on Debian the one linux-headers-amd64 depends on), or name the packages in"
            " driver_kernel_headers_packages." % (plan_result.get("kernel"), ", ".join(unavailable))
        )
    result.update(
        {
            "build": build,
            "locked": locked,
            "companions": companions,
            "headers": headers,
            "install": install,
            "missing": missing,
            "stale": stale,
            "install_needed": install_needed,
            "changing": changing,
            "previous_version": previous,
            "gpu_users": users,
            "services_to_cycle": cycle,
            "sign": bool(
                (plan_result.get("secure_boot") or {}).get("user_provided") and build == "dkms" and (plan_result["secure_boot"] or {}).get("config_file")
            ),
        }
    )
    return result


def secure_boot_steps(cert):
    """The exact steps to get DKMS-built modules loading under Secure Boot."""
    return (
        "Secure Boot is on and the NVIDIA module built by DKMS must be signed with a key the firmware trusts. Either:\n"
        "  a) enrol the key DKMS signs with: mokutil --import %(cert)s (choose a one-time password), reboot,"
        " pick 'Enroll MOK' in the blue MokManager screen and enter it; then re-run; or\n"
        "  b) use your own key: openssl req -new -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=gpunode DKMS signing/'"
        " -keyout /root/mok/MOK.priv -outform DER -out /root/mok/MOK.der; mokutil --import /root/mok/MOK.der; reboot and enrol"
        " as above; then set driver_secure_boot_mok_key: /root/mok/MOK.priv and driver_secure_boot_mok_cert: /root/mok/MOK.der."
        % {"cert": cert or "<certificate>"}
    )


def _secure_boot_problems(plan_result, state, build):
    sb = plan_result.get("secure_boot") or {}
    if sb.get("user_provided") and build == "dkms" and not sb.get("config_file"):
        return [
            "driver_secure_boot_mok_key/cert: this release's dkms (before 3.0) cannot be pointed at another key. Use the"
            " precompiled, vendor-signed modules (driver_precompiled_modules: always), or enrol the key it signs with"
            " (%s) and leave driver_secure_boot_mok_key/cert empty." % sb.get("cert")
        ]
    if not sb.get("enabled") or build != "dkms":
        return []
    files = state.get("files") or {}
    missing = [p for p in (sb.get("key"), sb.get("cert")) if p and not files.get(p)]
    if sb.get("user_provided") and missing:
        return ["driver_secure_boot_mok_key/cert: %s not found on the node" % ", ".join(missing)]
    enrolled = (state.get("mok") or {}).get("enrolled")
    if enrolled is True:
        return []
    if enrolled is None and sb.get("user_provided"):
        return []  # mokutil absent or unreadable: trust the user's key (noted in the summary)
    return [secure_boot_steps(sb.get("cert"))]
