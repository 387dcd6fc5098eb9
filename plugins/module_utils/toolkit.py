# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NVIDIA Container Toolkit on a node, read: versions, binaries, CDI, /dev/char.

Shared by toolkit_state (and its unit tests). Commands go through ``run``
(argv) -> (rc, stdout, stderr), see runner.py; paths are read under ``root``.
"""

from __future__ import absolute_import, division, print_function

import os
import re
import stat

from ansible_collections.gpunode.nvidia.plugins.module_utils.sysfs import _path

# "NVIDIA Container Toolkit CLI version 1.20.0" (nvidia-ctk --version, first line).
_CTK_VERSION_RE = re.compile(r"version\s+v?(\d+\.\d+\.\d+\S*)")
# "nvidia.com/gpu=0" lines of `nvidia-ctk cdi list`.
_CDI_DEVICE_RE = re.compile(r"^\s*([a-z0-9.-]+/[a-z0-9.-]+=\S+)\s*$", re.MULTILINE)
# Small text files only: the role compares them with what it would write.
_MAX_FILE = 65536


def ctk_version(text):
    """The version `nvidia-ctk --version` prints, or None."""
    match = _CTK_VERSION_RE.search(text or "")
    return match.group(1) if match else None


def cdi_devices(text):
    """Fully qualified CDI device names from `nvidia-ctk cdi list` output."""
    return sorted(set(_CDI_DEVICE_RE.findall(text or "")))


def file_state(path, root="/"):
    """{exists, mode, uid, gid, content (text up to 64 KiB, else None)} of one path."""
    real = _path(root, path)
    try:
        st = os.stat(real)
    except OSError:
        return {"exists": False, "mode": None, "uid": None, "gid": None, "content": None}
    content = None
    if stat.S_ISREG(st.st_mode) and st.st_size <= _MAX_FILE:
        try:
            with open(real, "rb") as handle:
                content = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            content = None
    return {
        "exists": True,
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "content": content,
    }


def nvidia_char_devices(root="/"):
    """(name, major, minor) of every /dev/nvidia* character device."""
    dev = _path(root, "dev")
    found = []
    try:
        names = sorted(os.listdir(dev))
    except OSError:
        return found
    for name in names:
        if not name.startswith("nvidia"):
            continue
        try:
            st = os.stat(os.path.join(dev, name))
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode):
            found.append((name, os.major(st.st_rdev), os.minor(st.st_rdev)))
    # /dev/nvidia-caps/* are character devices too (MIG capabilities).
    caps = os.path.join(dev, "nvidia-caps")
    if os.path.isdir(caps):
        for name in sorted(os.listdir(caps)):
            try:
                st = os.stat(os.path.join(caps, name))
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                found.append(("nvidia-caps/" + name, os.major(st.st_rdev), os.minor(st.st_rdev)))
    return found


def dev_char_links(root="/"):
    """NVIDIA device nodes and those without their /dev/char/<major>:<minor> link.

    systemd's device cgroup rules name devices through /dev/char; without the
    links a `systemctl daemon-reload` cuts running containers off their GPUs
    ("Failed to initialize NVML: Unknown Error", NVIDIA/nvidia-container-toolkit#48).
    """
    devices = nvidia_char_devices(root)
    missing = []
    for name, major, minor in devices:
        link = _path(root, "dev/char/%d:%d" % (major, minor))
        if not os.path.exists(link):
            missing.append(name)
    return {"devices": [d[0] for d in devices], "missing": missing}
