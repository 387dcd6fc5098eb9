# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operating-system facts that decide what the roles do on a node.

File readers take ``root`` for tests; the few helpers that need a command take
``run``, a callable (argv) -> (rc, stdout, stderr) such as
``AnsibleModule.run_command``, so the logic stays testable without a module.
"""

from __future__ import absolute_import, division, print_function

import os
import platform
import shlex

from ansible_collections.gpunode.nvidia.plugins.module_utils import driver
from ansible_collections.gpunode.nvidia.plugins.module_utils.sysfs import _path, read_text

# os-release ID (or an ID_LIKE entry) -> the OS family name Ansible uses, which
# the roles key their vars/<Family>.yml on.
OS_FAMILIES = {
    "debian": "Debian",
    "ubuntu": "Debian",
    "rhel": "RedHat",
    "centos": "RedHat",
    "rocky": "RedHat",
    "almalinux": "RedHat",
    "ol": "RedHat",
    "fedora": "RedHat",
}


def os_release(root="/"):
    """Parse /etc/os-release (falling back to /usr/lib/os-release) into a dict."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = read_text(_path(root, rel))
        if text is None:
            continue
        data = {}
        for line in text.splitlines():
            if "=" not in line or line.lstrip().startswith("#"):
                continue
            key, value = line.split("=", 1)
            try:
                parts = shlex.split(value)
            except ValueError:
                parts = [value.strip("\"'")]
            data[key.strip()] = parts[0] if parts else ""
        return data
    return {}


def os_facts(root="/"):
    """Distribution, major version, codename and family from os-release."""
    rel = os_release(root)
    dist_id = rel.get("ID", "").lower()
    family = OS_FAMILIES.get(dist_id)
    if family is None:
        for like in rel.get("ID_LIKE", "").lower().split():
            if like in OS_FAMILIES:
                family = OS_FAMILIES[like]
                break
    version = rel.get("VERSION_ID", "")
    # Ubuntu's major is "24.04" (a release is year.month); elsewhere the first field.
    major = version if dist_id == "ubuntu" else version.split(".")[0]
    return {
        "id": dist_id or None,
        "name": rel.get("PRETTY_NAME") or rel.get("NAME"),
        "family": family,
        "version": version or None,
        "major_version": major or None,
        "codename": rel.get("VERSION_CODENAME") or None,
    }


def architecture():
    """Machine architecture in the kernel's words (x86_64, aarch64)."""
    return platform.machine()


def init_system(root="/"):
    """What runs as PID 1 and whether systemd manages this boot."""
    comm = read_text(_path(root, "proc/1/comm"))
    # /run/systemd/system exists only when systemd is the running init (sd_booted()).
    booted = os.path.isdir(_path(root, "run/systemd/system"))
    return {"pid1": comm, "systemd": booted}


def virtualization(root="/", run=None):
    """Container and VM detection: systemd-detect-virt where present, else markers."""
    result = {"container": None, "vm": None}
    if run is not None:
        for kind, flag in (("container", "--container"), ("vm", "--vm")):
            rc, out, _err = run(["systemd-detect-virt", flag])
            word = out.strip()
            # rc 1 with "none" means "not virtualized"; other failures mean "no tool".
            if word:
                result[kind] = word
            elif rc == 0:
                result[kind] = "none"
    if result["container"] is None:
        marker = read_text(_path(root, "run/systemd/container"))
        if marker:
            result["container"] = marker
        elif os.path.exists(_path(root, "run/.containerenv")):
            result["container"] = "podman"
        elif os.path.exists(_path(root, ".dockerenv")):
            result["container"] = "docker"
    return result


def kernel_release():
    """The running kernel's release string (uname -r)."""
    return platform.release()


def installed_nvidia_modules(root="/"):
    """The main NVIDIA module built or installed for each kernel: {kernel: [paths]}.

    Which names and directories count is module_utils/driver.py's to know
    (nvidia.ko, Debian's nvidia-current*.ko, Tesla flavours, DKMS, precompiled).
    """
    found = {}
    try:
        kernels = sorted(os.listdir(_path(root, "lib/modules")))
    except OSError:
        return found
    for kernel in kernels:
        paths = driver.main_module_files(kernel, root)
        if paths:
            found[kernel] = paths
    return found


def headers_installed(release, root="/"):
    """Kernel build tree present for ``release`` (what DKMS builds against)."""
    return os.path.isdir(_path(root, "lib/modules", release, "build"))


def service_states(names, run):
    """Active and enablement state of systemd units in one `systemctl show`."""
    states = dict((n, {"active": None, "enabled": None}) for n in names)
    if not names:
        return states
    units = [n if "." in n else n + ".service" for n in names]
    rc, out, _err = run(["systemctl", "show", "--property=Id,ActiveState,UnitFileState", "--"] + units)
    if rc != 0:
        return states
    # One block per unit, in the order asked, separated by blank lines.
    blocks = out.strip().split("\n\n")
    for name, block in zip(names, blocks):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        states[name] = {
            "active": props.get("ActiveState") or None,
            "enabled": props.get("UnitFileState") or None,
        }
    return states


def file_states(paths, sha256, root="/"):
    """Per path: its ``sha256``, ``mode`` (four octal digits), ``uid`` and ``gid``; None where the
    path is not a regular file. What a converged check compares with what a role would write."""
    states = {}
    for path in paths:
        full = _path(root, path)
        if not os.path.isfile(full):
            states[path] = None
            continue
        info = os.stat(full)
        states[path] = {"sha256": sha256(full), "mode": "%04o" % (info.st_mode & 0o7777), "uid": info.st_uid, "gid": info.st_gid}
    return states


def nvml_library(run, root="/"):
    """The NVML userspace library the dynamic loader finds, with its version.

    The versioned file name (libnvidia-ml.so.<driver version>) behind the
    libnvidia-ml.so.1 link says which driver's userspace is installed.
    """
    rc, out, _err = run(["ldconfig", "-p"])
    if rc != 0:
        return None
    for raw in out.splitlines():
        line = raw.strip()
        if not line.startswith("libnvidia-ml.so.1 ") or "=>" not in line:
            continue
        path = line.split("=>", 1)[1].strip()
        real = os.path.realpath(_path(root, path))
        name = os.path.basename(real)
        version = name[len("libnvidia-ml.so."):] if name.startswith("libnvidia-ml.so.") else None
        if version == "1":
            version = None
        return {"path": path, "version": version}
    return None
