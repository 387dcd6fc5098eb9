# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the driver role does on a node, decided on the controller.

Pure functions of plain data (the role's inputs, the per-OS data in
roles/driver/vars/, the ``gpunode_preflight`` fact and what the
``driver_state`` module read), so every OS, source and branch combination is
unit-tested without a node. Three steps, each a filter in plugins/filter:

- :func:`plan` (before touching the node): validate the inputs and resolve
  branch, module type, packages, repository, kernel and Secure Boot needs.
- :func:`changes` (after the first state read): what is missing, whether the
  installed driver changes version, who holds the GPU, Secure Boot readiness.
- :func:`outcome` (after installing): holds, the DKMS/module verification and
  the reboot decision.
"""

from __future__ import absolute_import, division, print_function

import fnmatch
import re

SOURCES = ("distro", "cuda_repo", "mirror", "preinstalled")
MODULE_TYPES = ("auto", "open", "proprietary")
REBOOT_POLICIES = ("never", "if_needed", "always")
TRI_STATE = ("auto", "always", "never")
# driver_kernel_release: the kernel the OS's headers metapackage stands for (resolved on the node).
PACKAGED = "packaged"

_VERSION_RE = re.compile(r"^(\d{3})\.\d+(\.\d+)?$")
_BRANCH_RE = re.compile(r"^\d{3}$")

# NVIDIA makes the open kernel modules the default from branch 560 and ships
# them from 515 (nvidia-facts.md, Driver).
OPEN_DEFAULT_FROM = 560
OPEN_FIRST_BRANCH = 515
# PCI device ids, by generation: everything before Turing (Maxwell, Pascal,
# Volta) is below 0x1e00 and cannot run the open modules; Blackwell starts at
# 0x2900 and, with Grace Hopper (GH200), needs them.
FIRST_TURING_DEVICE = 0x1E00
FIRST_BLACKWELL_DEVICE = 0x2900
GRACE_HOPPER_DEVICES = (0x2342, 0x2348)


def _fmt(template, **values):
    return template.format(**values)


def _dev_id(device):
    try:
        return int(device.get("device") or "", 16)
    except (TypeError, ValueError):
        return None


def gpu_module_needs(gpus):
    """Which GPUs need the open modules and which cannot run them (by PCI id)."""
    need_open, no_open = [], []
    for dev in gpus or []:
        ident = _dev_id(dev)
        if ident is None:
            continue
        label = "%s (%s)" % (dev.get("address"), dev.get("device"))
        if ident >= FIRST_BLACKWELL_DEVICE or ident in GRACE_HOPPER_DEVICES:
            need_open.append(label)
        elif ident < FIRST_TURING_DEVICE:
            no_open.append(label)
    return need_open, no_open


def choose_module_type(wanted, branch, open_available, gpus):
    """(module type, reason, problem or None) for ``wanted`` in auto/open/proprietary."""
    need_open, no_open = gpu_module_needs(gpus)
    branch_num = int(branch) if branch and branch.isdigit() else 0
    if wanted == "open":
        if not open_available:
            return "open", "", "the open kernel modules are not packaged for branch %s by this source" % branch
        if no_open:
            return "open", "", "GPU(s) %s predate Turing and cannot run the open kernel modules" % ", ".join(no_open)
        return "open", "asked for", None
    if wanted == "proprietary":
        if need_open:
            return "proprietary", "", "GPU(s) %s (Blackwell, Grace Hopper) need the open kernel modules" % ", ".join(need_open)
        return "proprietary", "asked for", None
    if need_open and no_open:
        return (
            "open",
            "",
            "GPU(s) %s need the open kernel modules and %s cannot run them: no one driver serves both" % (", ".join(need_open), ", ".join(no_open)),
        )
    if need_open:
        if not open_available:
            return "open", "", "GPU(s) %s need the open kernel modules, which branch %s does not package here" % (", ".join(need_open), branch)
        return "open", "GPU(s) %s need them" % ", ".join(need_open), None
    if no_open:
        return "proprietary", "GPU(s) %s predate Turing" % ", ".join(no_open), None
    if branch_num >= OPEN_DEFAULT_FROM and open_available:
        return "open", "NVIDIA's default from branch %d" % OPEN_DEFAULT_FROM, None
    return "proprietary", "the default before branch %d" % OPEN_DEFAULT_FROM, None


def _os_label(facts):
    os_info = facts.get("os") or {}
    # os-release's PRETTY_NAME already carries the version.
    return os_info.get("name") or "%s %s" % (os_info.get("id"), os_info.get("version") or "")


def _rule_packages(rules, branch):
    """Packages from a list of {min_branch, packages} rules (first that applies)."""
    if not rules:
        return None
    number = int(branch) if branch.isdigit() else 0
    for rule in rules:
        if number >= int(rule.get("min_branch", 0)):
            return list(rule["packages"])
    return None


def _source_data(os_data, source):
    # A mirror is a copy of NVIDIA's CUDA repository: same packages, own URL and key.
    key = "cuda_repo" if source == "mirror" else source
    return (os_data.get("sources") or {}).get(key)


def _branches(source, src, release, extra):
    if source == "distro":
        data = dict((release or {}).get("branches") or {})
    else:
        data = dict((b, {}) for b in src.get("branches") or [])
    for branch in extra or []:
        data.setdefault(str(branch), {})
    return data


def _repository(inputs, src, family, facts):
    """The repository file's contents for cuda_repo/mirror, or None; (repo, problem)."""
    source = inputs["source"]
    os_info = facts.get("os") or {}
    arch = facts.get("architecture")
    if source == "cuda_repo":
        dist = (src.get("dists") or {}).get(str(os_info.get("major_version")))
        repo_arch = (src.get("architectures") or {}).get(arch)
        if not repo_arch:
            return None, "NVIDIA's CUDA repository has no %s build" % arch
        base = inputs["cuda_repo_url"].rstrip("/")
        url = "%s/%s/%s/" % (base, dist, repo_arch)
        key_url = url + src["key"]
        suites, components = "/", []
        description = "NVIDIA CUDA repository (%s/%s)" % (dist, repo_arch)
    else:
        url = inputs.get("mirror_url") or ""
        key_url = inputs.get("mirror_key_url") or ""
        if not url or not key_url:
            return None, "driver_source mirror needs driver_mirror_url and driver_mirror_key_url (the repository's signing key)"
        suites = inputs.get("mirror_suite") or "/"
        components = list(inputs.get("mirror_components") or [])
        description = "NVIDIA driver mirror"
    key_ext = ".gpg" if key_url.endswith(".gpg") else ".asc"
    repo = {
        "name": "gpunode-nvidia-driver",
        "description": description,
        "url": url,
        "key_url": key_url,
        "key_checksum": inputs.get("repo_key_checksum") or "",
        "suites": suites,
        "components": components,
        "file": family["repo_file"],
        "template": family["repo_template"],
        "key_file": family["keyring_dir"].rstrip("/") + "/gpunode-nvidia-driver" + key_ext if family.get("keyring_dir") else None,
    }
    return repo, None


def _not_published(src, facts, source):
    os_info = facts.get("os") or {}
    published = ", ".join(sorted(set((src.get("dists") or {}).values()))) or "none"
    return (
        "driver_source %s: NVIDIA does not publish its CUDA repository for %s (it publishes %s for this OS family). "
        "Use driver_source: distro where the OS ships the driver, or mirror with a repository you maintain."
        % (source, _os_label(facts).strip(), published)
        if not (src.get("dists") or {}).get(str(os_info.get("major_version")))
        else None
    )


def plan(inputs, os_data, family, facts):
    """Resolve and validate everything that needs no node read beyond the preflight fact."""
    problems, notes = [], []
    source = inputs.get("source")
    result = {"source": source, "problems": problems, "notes": notes}
    if source not in SOURCES:
        problems.append("driver_source must be one of %s, not %r" % (", ".join(SOURCES), source))
        return result
    for key, allowed in (("kernel_module_type", MODULE_TYPES), ("reboot", REBOOT_POLICIES), ("fabricmanager", TRI_STATE), ("precompiled_modules", TRI_STATE)):
        if inputs.get(key) not in allowed:
            problems.append("driver_%s must be one of %s, not %r" % (key, ", ".join(allowed), inputs.get(key)))
    branch = str(inputs.get("branch") or "")
    version = str(inputs.get("version") or "")
    if branch and not _BRANCH_RE.match(branch):
        problems.append("driver_branch %r is not a driver branch (three digits, such as 535 or 580)" % branch)
    if version:
        match = _VERSION_RE.match(version)
        if not match:
            problems.append(
                "driver_version %r is not a driver version: give NVIDIA's version such as 535.261.03, not a package version" % version
            )
        elif branch and match.group(1) != branch:
            problems.append(
                "driver_version %s does not belong to driver_branch %s: set the branch to %s, or pick a %s.x version"
                % (version, branch, match.group(1), branch)
            )
        elif not branch:
            branch = match.group(1)
    kernel = inputs.get("kernel_release") or (facts.get("kernel") or {}).get("target") or (facts.get("kernel") or {}).get("running")
    if kernel == PACKAGED and source != "preinstalled":
        meta = (os_data.get("headers_meta") or {}).get(facts.get("architecture"))
        problems.append(
            "driver_kernel_release packaged: %s names no kernel headers package in the package cache"
            " (refresh the cache, or set driver_kernel_release to a kernel release)" % (meta or "this OS has no headers metapackage that")
        )
    gpus = (facts.get("gpus") or {}).get("devices") or []
    nvswitches = (facts.get("nvswitches") or {}).get("count", 0) or len((facts.get("nvswitches") or {}).get("procfs") or [])
    result.update(
        {
            "branch": branch,
            "version": version,
            "kernel": kernel,
            "running_kernel": (facts.get("kernel") or {}).get("running"),
            "package_manager": family.get("package_manager"),
            "patterns": list(family.get("driver_package_patterns") or []),
            "gpus": len(gpus),
            "nvswitches": nvswitches,
            "container": ((facts.get("virtualization") or {}).get("container") or "none") not in ("none", ""),
            "services": {"persistenced": "nvidia-persistenced", "fabricmanager": "nvidia-fabricmanager"},
        }
    )
    if source == "preinstalled":
        return _plan_preinstalled(result, inputs, facts)

    src = _source_data(os_data, source)
    if not src:
        problems.append(
            "driver_source %s: %s does not ship the NVIDIA driver in its own repositories; use driver_source: cuda_repo or mirror"
            % (source, os_data.get("name", _os_label(facts)))
        )
        return result
    release = None
    if source == "distro":
        release = (src.get("releases") or {}).get(str((facts.get("os") or {}).get("major_version")))
        if not release:
            problems.append(
                "driver_source distro: no driver data for %s (this role knows releases %s)"
                % (_os_label(facts).strip(), ", ".join(sorted(src.get("releases") or {})))
            )
            return result
    elif source == "cuda_repo":
        unpublished = _not_published(src, facts, source)
        if unpublished:
            problems.append(unpublished)
    branches = _branches(source, src, release, inputs.get("extra_branches"))
    default_branch = (release or src).get("default_branch")
    branch = branch or str(default_branch or "")
    result["branch"] = branch
    if branch and _BRANCH_RE.match(branch) and branch not in branches:
        problems.append(
            "driver_branch %s is not a branch that %s offers on %s (known: %s). If it has gained one since, add it to driver_extra_branches."
            % (branch, source, _os_label(facts).strip(), ", ".join(sorted(branches)))
        )
    branch_data = branches.get(branch) or {}
    open_available = branch_data.get("open", True) is not False and branch.isdigit() and int(branch) >= OPEN_FIRST_BRANCH
    if "open" not in ((src.get("packages") or {}).get("dkms") or {}):
        open_available = False
    module_type, reason, problem = choose_module_type(inputs.get("kernel_module_type", "auto"), branch, open_available, gpus)
    if problem:
        problems.append("driver_kernel_module_type %s: %s" % (inputs.get("kernel_module_type"), problem))
    result["module_type"] = module_type
    result["module_type_reason"] = reason
    if problems:
        return result

    values = {"branch": branch, "prefix": branch_data.get("prefix", ""), "open": "-open" if module_type == "open" else "", "kernel": kernel}
    packages = src["packages"]
    common = [_fmt(p, **values) for p in packages.get("common") or []]
    companions = [_fmt(p, **values) for p in src.get("companions") or []]
    dkms_set = [_fmt(p, **values) for p in packages["dkms"][module_type]] + common
    precompiled = None
    mode = inputs.get("precompiled_modules", "auto")
    if packages.get("precompiled") and mode != "never":
        precompiled = {
            "locked": [_fmt(p, **values) for p in packages["precompiled"][module_type]] + common,
            "module_package": _fmt(src["precompiled_module"], **values),
        }
    elif mode == "always":
        problems.append("driver_precompiled_modules always: %s has no precompiled kernel modules on %s" % (source, _os_label(facts).strip()))

    fm_wanted = inputs.get("fabricmanager") == "always" or (inputs.get("fabricmanager") == "auto" and nvswitches > 0)
    fabricmanager = None
    if fm_wanted:
        fm_packages = _rule_packages(src.get("fabricmanager"), branch)
        if fm_packages is None:
            problems.append(
                "this node has %d NVSwitch(es) and needs Fabric Manager, which %s does not package on %s: use driver_source cuda_repo or mirror"
                % (nvswitches, source, _os_label(facts).strip())
            )
        else:
            fabricmanager = {"packages": [_fmt(p, **values) for p in fm_packages]}

    headers = [_fmt(p, kernel=kernel) for p in (inputs.get("kernel_headers_packages") or [family["headers_package"]])]
    repository = None
    if source in ("cuda_repo", "mirror"):
        repository, problem = _repository(inputs, src, family, facts)
        if problem:
            problems.append(problem)
    module_stream = None
    if family.get("package_manager") == "dnf" and src.get("module_stream"):
        module_stream = _fmt(src["module_stream"][module_type], branch=branch)

    result.update(
        {
            "dkms": {"locked": dkms_set, "module_package": None},
            "precompiled": precompiled,
            "companions": companions,
            "fabricmanager": fabricmanager,
            "headers": headers,
            "repository": repository,
            "module_stream": module_stream,
            "pin": {"patterns": list(family.get("driver_package_patterns") or []), "version": version} if version and family.get("pin_file") else None,
            "secure_boot": _secure_boot_needs(inputs, family, facts, os_data),
            "nvml": _nvml(inputs, os_data, family, problems),
            "initramfs_image": _fmt(family["initramfs_image"], kernel=kernel) if family.get("initramfs_image") else None,
            "build_requires": list(family.get("build_requires") or []),
        }
    )
    return result


def _plan_preinstalled(result, inputs, facts):
    # Verify only: nothing is installed, so only the wanted branch/version matter.
    result.update(
        {
            "module_type": inputs.get("kernel_module_type", "auto"),
            "module_type_reason": "as found",
            "dkms": None,
            "precompiled": None,
            "companions": [],
            "fabricmanager": None,
            "headers": [],
            "repository": None,
            "module_stream": None,
            "pin": None,
            "secure_boot": None,
            "nvml": {"install": "none", "python": inputs.get("nvml_python") or None, "packages": []},
            "initramfs_image": None,
        }
    )
    return result


def _secure_boot_needs(inputs, family, facts, os_data):
    """Which MOK key and certificate DKMS would sign with, when Secure Boot matters."""
    user_key, user_cert = inputs.get("secure_boot_mok_key") or "", inputs.get("secure_boot_mok_cert") or ""
    enabled = (facts.get("secure_boot") or {}).get("enabled")
    release = str((facts.get("os") or {}).get("major_version"))
    # dkms before 3.0 (Ubuntu 22.04) reads no framework.conf.d drop-in to point at our key.
    config_file = None if release in (os_data.get("dkms_without_conf_d") or []) else family.get("dkms_signing_config")
    return {
        "enabled": enabled,
        "user_provided": bool(user_key or user_cert),
        "key": user_key or os_data.get("dkms_mok_key") or family.get("dkms_mok_key"),
        "cert": user_cert or os_data.get("dkms_mok_cert") or family.get("dkms_mok_cert"),
        "config_file": config_file,
    }


def _nvml(inputs, os_data, family, problems):
    install = inputs.get("nvml_install", "venv")
    if install == "venv":
        return {"install": "venv", "python": inputs.get("nvml_python"), "packages": list(family.get("venv_packages") or [])}
    if install == "distro":
        package = os_data.get("nvml_distro_package")
        if not package:
            problems.append("driver_nvml_install distro: %s packages no nvidia-ml-py; use driver_nvml_install: venv" % os_data.get("name"))
            return {"install": "distro", "python": inputs.get("nvml_python"), "packages": []}
        return {"install": "distro", "python": inputs.get("nvml_python"), "packages": [package]}
    return {"install": "none", "python": inputs.get("nvml_python") or None, "packages": []}


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
        "nvidia_smi": bool(plan_result.get("gpus")),
    }


def _unique(names):
    seen, unique = set(), []
    for name in names:
        if name and name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def upstream(package_version):
    """'3:550.54.15-1.el9' -> '550.54.15'; None stays None."""
    if not package_version:
        return None
    version = package_version.split(":", 1)[1] if ":" in package_version else package_version
    return version.split("-", 1)[0]


def version_spec(family, name, version):
    """How the package manager asks for ``name`` at driver ``version``."""
    return _fmt(family["version_spec"], name=name, version=version) if version else name


def changes(plan_result, state, inputs, family):
    """What must change on the node, from the plan and the first state read."""
    problems, notes = [], []
    installed = state.get("packages") or {}
    available = state.get("available") or {}
    result = {"problems": problems, "notes": notes}
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
