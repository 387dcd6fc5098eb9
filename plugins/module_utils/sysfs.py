# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read NVIDIA hardware and kernel state from sysfs and procfs.

Every function takes ``root`` (normally "/") so unit tests can point it at a
recorded tree. Nothing here runs a command or needs a library: the first thing
we learn about a node must work before any driver or tool is installed.
"""

from __future__ import absolute_import, division, print_function

import os
import re

NVIDIA_PCI_VENDOR = "0x10de"
# PCI base class 0x03 (display): 0x0300 VGA, 0x0302 3D controller (datacenter GPUs).
GPU_CLASS_PREFIXES = ("0x0300", "0x0302")
# NVSwitches enumerate as "bridge, other" (0x0680) with NVIDIA's vendor id.
NVSWITCH_CLASS_PREFIX = "0x0680"
# EFI variable GUID for SecureBoot and SetupMode (UEFI specification, EFI_GLOBAL_VARIABLE).
EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-e98032b8c4f0"

_DRIVER_VERSION_RE = re.compile(r"\s(\d+\.\d+(?:\.\d+)?)\s")


def _path(root, *parts):
    return os.path.join(root, *[p.lstrip("/") for p in parts])


def read_text(path, default=None):
    """Return a sysfs/procfs file's text stripped, or ``default`` when unreadable."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return default


def _pci_device(dev_dir, address):
    driver_link = os.path.join(dev_dir, "driver")
    driver = None
    if os.path.islink(driver_link):
        driver = os.path.basename(os.readlink(driver_link))
    numa = read_text(os.path.join(dev_dir, "numa_node"))
    return {
        "address": address,
        "vendor": read_text(os.path.join(dev_dir, "vendor")),
        "device": read_text(os.path.join(dev_dir, "device")),
        "class": read_text(os.path.join(dev_dir, "class")),
        "subsystem_vendor": read_text(os.path.join(dev_dir, "subsystem_vendor")),
        "subsystem_device": read_text(os.path.join(dev_dir, "subsystem_device")),
        "driver": driver,
        "numa_node": int(numa) if numa is not None and re.match(r"^-?\d+$", numa) else None,
    }


def pci_devices(root="/"):
    """Every PCI function under /sys/bus/pci/devices, sorted by address."""
    base = _path(root, "sys/bus/pci/devices")
    try:
        addresses = sorted(os.listdir(base))
    except OSError:
        return []
    return [_pci_device(os.path.join(base, a), a) for a in addresses]


def nvidia_pci(root="/"):
    """Split NVIDIA's PCI functions into GPUs and NVSwitches."""
    gpus, nvswitches = [], []
    for dev in pci_devices(root):
        if (dev["vendor"] or "").lower() != NVIDIA_PCI_VENDOR:
            continue
        klass = (dev["class"] or "").lower()
        if klass.startswith(GPU_CLASS_PREFIXES):
            gpus.append(dev)
        elif klass.startswith(NVSWITCH_CLASS_PREFIX):
            nvswitches.append(dev)
    return gpus, nvswitches


def nvswitch_procfs_devices(root="/"):
    """NVSwitch device entries the nvidia driver exposes (empty when none or not loaded)."""
    try:
        return sorted(os.listdir(_path(root, "proc/driver/nvidia-nvswitch/devices")))
    except OSError:
        return []


def kernel_modules(names, root="/"):
    """Whether each module in ``names`` is loaded.

    /proc/modules is authoritative; where it is missing (some VMs, containers
    with a masked procfs) /sys/module/<name> is the fallback. Returns
    ``({name: bool}, source)``, and ``source`` None with every value None when
    neither can be read.
    """
    text = read_text(_path(root, "proc/modules"))
    if text is not None:
        loaded = set(line.split(" ", 1)[0] for line in text.splitlines() if line)
        return dict((n, n in loaded) for n in names), "/proc/modules"
    sys_module = _path(root, "sys/module")
    if os.path.isdir(sys_module):
        return dict((n, os.path.isdir(os.path.join(sys_module, n))) for n in names), "/sys/module"
    return dict((n, None) for n in names), None


def loaded_driver(root="/"):
    """The running NVIDIA kernel driver from /proc/driver/nvidia/version, or None."""
    text = read_text(_path(root, "proc/driver/nvidia/version"))
    if not text:
        return None
    first = text.splitlines()[0]
    match = _DRIVER_VERSION_RE.search(first + " ")
    return {
        "version": match.group(1) if match else None,
        "kernel_module_type": "open" if "Open Kernel Module" in first else "proprietary",
        "banner": first,
    }


def _efi_flag(root, name):
    # efivarfs: 4 bytes of attributes, then the value; one byte for these booleans.
    path = _path(root, "sys/firmware/efi/efivars", "%s-%s" % (name, EFI_GLOBAL_GUID))
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if len(data) < 5:
        return None
    return bytearray(data)[4] == 1


def secure_boot(root="/"):
    """UEFI Secure Boot state: firmware type, enabled, setup mode.

    ``enabled`` is None when the firmware is UEFI but the variable cannot be
    read (efivarfs not mounted, as in most containers).
    """
    if not os.path.isdir(_path(root, "sys/firmware/efi")):
        return {"firmware": "bios", "enabled": False, "setup_mode": None}
    return {
        "firmware": "uefi",
        "enabled": _efi_flag(root, "SecureBoot"),
        "setup_mode": _efi_flag(root, "SetupMode"),
    }
