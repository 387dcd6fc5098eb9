# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The driver role's plan, decided on the controller before the node is touched.

:func:`plan` resolves branch, module type, packages, repository, kernel and
Secure Boot needs from the role's inputs, the per-OS data in roles/driver/vars/
and the ``gpunode_preflight`` fact, and names every problem with the inputs
that the role's argument spec cannot (meta/argument_specs.yml already checks
types and choices). Pure functions of plain data, so every OS, source and
branch combination is unit-tested without a node. The next steps are
driver_changes.py (what changes on this node) and driver_outcome.py (judging
the installed driver); each is a filter in plugins/filter/driver.py.
"""

from __future__ import absolute_import, division, print_function

import re

from ansible_collections.gpunode.nvidia.plugins.plugin_utils.driver_common import fmt

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
# cuda-bindings is released per CUDA major version, matched to the driver's: 13.x
# needs a CUDA 13 driver (branch 580 on), 12.x runs on the CUDA 12 branches (525 to 575).
CUDA13_FROM_BRANCH = 580
# The interpreter the NVML venv is made from (tasks/configure.yml).
VENV_BASE_PYTHON = "/usr/bin/python3"


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
    common = [fmt(p, **values) for p in packages.get("common") or []]
    companions = [fmt(p, **values) for p in src.get("companions") or []]
    dkms_set = [fmt(p, **values) for p in packages["dkms"][module_type]] + common
    precompiled = None
    mode = inputs.get("precompiled_modules", "auto")
    if packages.get("precompiled") and mode != "never":
        precompiled = {
            "locked": [fmt(p, **values) for p in packages["precompiled"][module_type]] + common,
            "module_package": fmt(src["precompiled_module"], **values),
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
            fabricmanager = {"packages": [fmt(p, **values) for p in fm_packages]}

    headers = [fmt(p, kernel=kernel) for p in (inputs.get("kernel_headers_packages") or [family["headers_package"]])]
    repository = None
    if source in ("cuda_repo", "mirror"):
        repository, problem = _repository(inputs, src, family, facts)
        if problem:
            problems.append(problem)
    module_stream = None
    if family.get("package_manager") == "dnf" and src.get("module_stream"):
        module_stream = fmt(src["module_stream"][module_type], branch=branch)

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
            "nvml": _nvml(inputs, os_data, family, problems, branch),
            "initramfs_image": fmt(family["initramfs_image"], kernel=kernel) if family.get("initramfs_image") else None,
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


def cuda_major(branch):
    """The CUDA major version a driver branch supports: 13 from branch 580, 12 below."""
    return 13 if branch.isdigit() and int(branch) >= CUDA13_FROM_BRANCH else 12


def cuda_bindings(wanted, branch):
    """What driver_cuda_bindings_package asks for on ``branch``: None for none, else the
    pip ``requirement`` (auto: ``cuda-bindings==<CUDA major>.*``) and the ``pin`` after
    its ``==`` that the installed version must match (empty: none, pip decides)."""
    wanted = (wanted or "auto").strip()
    if wanted == "none":
        return None
    requirement = "cuda-bindings==%d.*" % cuda_major(branch) if wanted == "auto" else wanted
    return {"requirement": requirement, "pin": requirement.split("==", 1)[1].strip() if "==" in requirement else ""}


def _nvml(inputs, os_data, family, problems, branch):
    install = inputs.get("nvml_install", "venv")
    if install == "venv":
        return {
            "install": "venv",
            "python": inputs.get("nvml_python"),
            "base": VENV_BASE_PYTHON,
            "packages": list(family.get("venv_packages") or []),
            "cuda_bindings": cuda_bindings(inputs.get("cuda_bindings_package"), branch),
        }
    if install == "distro":
        package = os_data.get("nvml_distro_package")
        if not package:
            problems.append("driver_nvml_install distro: %s packages no nvidia-ml-py; use driver_nvml_install: venv" % os_data.get("name"))
            return {"install": "distro", "python": inputs.get("nvml_python"), "packages": []}
        return {"install": "distro", "python": inputs.get("nvml_python"), "packages": [package]}
    return {"install": "none", "python": inputs.get("nvml_python") or None, "packages": []}
