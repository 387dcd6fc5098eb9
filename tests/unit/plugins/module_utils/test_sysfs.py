"""module_utils/sysfs.py over recorded GPU-less trees and GPU hosts written from notes."""

import os

from ansible_collections.gpunode.nvidia.plugins.module_utils import sysfs

from ... import hosts


def test_lab_vm_pci_is_read_and_has_no_nvidia(lab_vm):
    devices = sysfs.pci_devices(lab_vm)
    assert [d["address"] for d in devices] == [
        "0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:03.0", "0000:00:04.0", "0000:00:05.0",
    ]
    net = devices[3]
    assert (net["vendor"], net["device"], net["class"], net["driver"]) == ("0x1af4", "0x1041", "0x020000", "virtio-pci")
    assert devices[0]["driver"] is None
    assert sysfs.nvidia_pci(lab_vm) == ([], [])


def test_lab_vm_without_proc_modules_falls_back_to_sys_module(lab_vm):
    loaded, source = sysfs.kernel_modules(["nvidia", "nouveau", "8250"], lab_vm)
    assert source == "/sys/module"
    assert loaded == {"nvidia": False, "nouveau": False, "8250": True}


def test_unreadable_module_state_is_unknown(tmp_path):
    assert sysfs.kernel_modules(["nvidia"], str(tmp_path)) == ({"nvidia": None}, None)


def test_lab_nodes_have_no_driver_and_bios_boot(lab_node, lab_vm):
    for root in (lab_vm, lab_node):
        assert sysfs.loaded_driver(root) is None
        assert sysfs.nvswitch_procfs_devices(root) == []
        assert sysfs.secure_boot(root) == {"firmware": "bios", "enabled": False, "setup_mode": None}


def test_hgx_gpus_and_nvswitches_are_split_by_class(tmp_path):
    root = str(hosts.hgx_h100(tmp_path))
    gpus, nvswitches = sysfs.nvidia_pci(root)
    assert len(gpus) == 8 and len(nvswitches) == 4
    assert {g["device"] for g in gpus} == {"0x2330"}
    assert {g["driver"] for g in gpus} == {"nvidia"}
    assert [g["numa_node"] for g in gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {s["driver"] for s in nvswitches} == {"nvidia-nvswitch"}
    assert sysfs.nvswitch_procfs_devices(root) == ["0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0"]


def test_proc_modules_is_authoritative(tmp_path):
    root = str(hosts.hgx_h100(tmp_path))
    loaded, source = sysfs.kernel_modules(["nvidia", "nvidia_uvm", "nvidia_peermem", "nouveau"], root)
    assert source == "/proc/modules"
    assert loaded == {"nvidia": True, "nvidia_uvm": True, "nvidia_peermem": False, "nouveau": False}


def test_open_and_proprietary_driver_banners(tmp_path):
    root = str(hosts.hgx_h100(tmp_path))
    drv = sysfs.loaded_driver(root)
    assert drv["version"] == "580.159.04"
    assert drv["kernel_module_type"] == "open"
    hosts.write(tmp_path, "proc/driver/nvidia/version", hosts.PROPRIETARY_535_BANNER)
    drv = sysfs.loaded_driver(root)
    assert (drv["version"], drv["kernel_module_type"]) == ("535.261.03", "proprietary")


def test_audio_function_and_vga_class(tmp_path):
    root = str(hosts.workstation_nouveau(tmp_path))
    gpus, nvswitches = sysfs.nvidia_pci(root)
    # The GPU's HDMI audio function (class 0x0403) is not a GPU.
    assert [g["address"] for g in gpus] == ["0000:01:00.0"]
    assert gpus[0]["driver"] == "nouveau" and nvswitches == []


def test_secure_boot_states(tmp_path):
    root = str(hosts.workstation_nouveau(tmp_path))
    assert sysfs.secure_boot(root) == {"firmware": "uefi", "enabled": True, "setup_mode": False}
    hosts.efi_var(tmp_path, "SecureBoot", 0)
    assert sysfs.secure_boot(root)["enabled"] is False
    # A truncated variable or missing efivarfs reads as unknown, not as off.
    hosts.write(tmp_path, "sys/firmware/efi/efivars/SecureBoot-" + hosts.EFI_GUID, b"\x07\x00")
    assert sysfs.secure_boot(root)["enabled"] is None
    os.remove(os.path.join(root, "sys/firmware/efi/efivars/SecureBoot-" + hosts.EFI_GUID))
    assert sysfs.secure_boot(root) == {"firmware": "uefi", "enabled": None, "setup_mode": False}


def test_missing_pci_tree_is_empty(tmp_path):
    assert sysfs.pci_devices(str(tmp_path)) == []
    assert sysfs.nvidia_pci(str(tmp_path)) == ([], [])
