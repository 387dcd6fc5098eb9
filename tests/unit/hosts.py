"""Build sysfs/procfs trees of GPU hosts for tests, from documented facts.

The recorded trees of GPU-less machines live in fixtures/hosts/ (made with
fixtures/record-host.sh). No GPU host can be recorded here, so the GPU hosts
below are written from ../shared/notes (PCI ids and classes, the driver's
/proc banner) and the H100 machine's readings in notes/gpu-machine.md.
"""

import os

# /proc/driver/nvidia/version first lines, in the driver's format.
OPEN_580_BANNER = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build"
    "  (dvs-builder@U22-I3-AF03-09-1)  Thu Oct  9 03:01:39 UTC 2025\n"
    "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n"
)
PROPRIETARY_535_BANNER = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed Jul 16 21:50:35 UTC 2025\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14+deb12u1)\n"
)
UBUNTU_2404 = (
    'PRETTY_NAME="Ubuntu 24.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
    'VERSION="24.04.3 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n'
)
ROCKY_9 = (
    'NAME="Rocky Linux"\nVERSION="9.4 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
    'VERSION_ID="9.4"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n'
)
EFI_GUID = "8be4df61-93ca-11d2-aa0d-e98032b8c4f0"
H100_SXM = {"vendor": "0x10de", "device": "0x2330", "class": "0x030200"}
NVSWITCH_GEN3 = {"vendor": "0x10de", "device": "0x22a3", "class": "0x068000"}


def write(root, rel, text=""):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(path, mode) as handle:
        handle.write(text)
    return path


def pci(root, address, ids, driver=None, numa=0):
    base = "sys/bus/pci/devices/%s" % address
    for key in ("vendor", "device", "class"):
        write(root, "%s/%s" % (base, key), ids[key] + "\n")
    write(root, base + "/subsystem_vendor", ids["vendor"] + "\n")
    write(root, base + "/subsystem_device", "0x16c1\n")
    write(root, base + "/numa_node", "%d\n" % numa)
    if driver:
        os.symlink("../../../bus/pci/drivers/" + driver, os.path.join(str(root), base, "driver"))


def efi_var(root, name, value):
    # efivarfs layout: 4 attribute bytes (NV+BS+RT = 0x07), then the value byte.
    write(root, "sys/firmware/efi/efivars/%s-%s" % (name, EFI_GUID), bytes([7, 0, 0, 0, value]))


def hgx_h100(root):
    """An HGX H100 node: 8 SXM GPUs, 4 NVSwitches, open 580 driver loaded, Ubuntu 24.04, UEFI."""
    write(root, "etc/os-release", UBUNTU_2404)
    write(root, "proc/1/comm", "systemd\n")
    os.makedirs(os.path.join(str(root), "run/systemd/system"))
    for i, bus in enumerate(("18", "2a", "3a", "5d", "9a", "ab", "ba", "db")):
        pci(root, "0000:%s:00.0" % bus, H100_SXM, driver="nvidia", numa=i // 4)
    for bus in ("05", "06", "07", "08"):
        pci(root, "0000:%s:00.0" % bus, NVSWITCH_GEN3, driver="nvidia-nvswitch")
    # The host bridge and a NIC: not NVIDIA, must be ignored.
    pci(root, "0000:00:00.0", {"vendor": "0x8086", "device": "0x09a2", "class": "0x060000"})
    pci(root, "0000:17:00.0", {"vendor": "0x15b3", "device": "0x1021", "class": "0x020700"}, driver="mlx5_core")
    write(root, "proc/modules", "\n".join([
        "nvidia_uvm 2076672 0 - Live 0x0000000000000000 (POE)",
        "nvidia_drm 135168 0 - Live 0x0000000000000000 (POE)",
        "nvidia_modeset 1638400 1 nvidia_drm, Live 0x0000000000000000 (POE)",
        "nvidia 104071168 30 nvidia_uvm,nvidia_modeset, Live 0x0000000000000000 (POE)",
        "mlx5_core 2412544 0 - Live 0x0000000000000000",
    ]) + "\n")
    write(root, "proc/driver/nvidia/version", OPEN_580_BANNER)
    for i in range(4):
        os.makedirs(os.path.join(str(root), "proc/driver/nvidia-nvswitch/devices/0000:0%d:00.0" % (5 + i)))
    efi_var(root, "SecureBoot", 0)
    efi_var(root, "SetupMode", 0)
    os.makedirs(os.path.join(str(root), "lib/modules/6.8.0-87-generic/build"))
    write(root, "lib/modules/6.8.0-87-generic/updates/dkms/nvidia.ko.zst")
    return root


def gpu_machine_h100(root):
    """The lent H100 machine (notes/gpu-machine.md): one GPU, open 580 driver, no systemd, docker."""
    write(root, "etc/os-release", UBUNTU_2404)
    write(root, "proc/1/comm", "init\n")
    write(root, ".dockerenv")
    pci(root, "0000:00:05.0", {"vendor": "0x10de", "device": "0x2330", "class": "0x030200"}, driver="nvidia")
    write(root, "proc/modules", "nvidia_uvm 2076672 0 - Live 0x0 (OE)\nnvidia 104071168 8 nvidia_uvm, Live 0x0 (OE)\n")
    write(root, "proc/driver/nvidia/version", OPEN_580_BANNER)
    return root


def workstation_nouveau(root):
    """A Rocky 9 workstation with Secure Boot on, nouveau bound to the GPU, a 535 DKMS module built but not loaded."""
    write(root, "etc/os-release", ROCKY_9)
    write(root, "proc/1/comm", "systemd\n")
    os.makedirs(os.path.join(str(root), "run/systemd/system"))
    pci(root, "0000:01:00.0", {"vendor": "0x10de", "device": "0x2204", "class": "0x030000"}, driver="nouveau")
    pci(root, "0000:01:00.1", {"vendor": "0x10de", "device": "0x1aef", "class": "0x040300"}, driver="snd_hda_intel")
    write(root, "proc/modules", "nouveau 2412544 3 - Live 0x0\ndrm_ttm_helper 16384 1 nouveau, Live 0x0\n")
    efi_var(root, "SecureBoot", 1)
    efi_var(root, "SetupMode", 0)
    os.makedirs(os.path.join(str(root), "lib/modules/5.14.0-427.el9.x86_64/build"))
    write(root, "lib/modules/5.14.0-427.el9.x86_64/extra/nvidia.ko.xz")
    return root
