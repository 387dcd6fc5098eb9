"""module_utils/host.py: OS facts, init, virtualization, installed modules, services, NVML library."""

import os

from ansible_collections.gpunode.nvidia.plugins.module_utils import host

from ... import hosts
from ...conftest import FIXTURES
from ...utils import FakeRun


def recorded(name):
    with open(os.path.join(FIXTURES, "commands", name)) as handle:
        return handle.read()


def test_debian_os_facts_from_recorded_trees(lab_node, lab_vm):
    for root in (lab_vm, lab_node):
        facts = host.os_facts(root)
        assert facts["id"] == "debian" and facts["family"] == "Debian"
        assert facts["major_version"] == "12" and facts["codename"] == "bookworm"


def test_ubuntu_major_is_year_month(tmp_path):
    hosts.write(tmp_path, "etc/os-release", hosts.UBUNTU_2404)
    facts = host.os_facts(str(tmp_path))
    assert (facts["id"], facts["family"], facts["major_version"], facts["codename"]) == ("ubuntu", "Debian", "24.04", "noble")


def test_rhel_rebuild_family_and_major(tmp_path):
    hosts.write(tmp_path, "etc/os-release", hosts.ROCKY_9)
    facts = host.os_facts(str(tmp_path))
    assert (facts["id"], facts["family"], facts["version"], facts["major_version"]) == ("rocky", "RedHat", "9.4", "9")


def test_family_from_id_like_and_unknown_os(tmp_path):
    hosts.write(tmp_path, "etc/os-release", 'ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="22"\n')
    assert host.os_facts(str(tmp_path))["family"] == "Debian"
    hosts.write(tmp_path, "etc/os-release", 'ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n')
    facts = host.os_facts(str(tmp_path))
    assert (facts["id"], facts["family"], facts["major_version"]) == ("alpine", None, "3")


def test_os_release_fallback_and_absence(tmp_path):
    assert host.os_facts(str(tmp_path))["id"] is None
    hosts.write(tmp_path, "usr/lib/os-release", 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n')
    assert host.os_facts(str(tmp_path))["major_version"] == "13"


def test_init_system(lab_node, tmp_path):
    assert host.init_system(lab_node) == {"pid1": "systemd", "systemd": True}
    assert host.init_system(str(hosts.gpu_machine_h100(tmp_path))) == {"pid1": "init", "systemd": False}


def test_virtualization_from_systemd_detect_virt(lab_node):
    run = FakeRun({"systemd-detect-virt": lambda argv: (0, "podman\n" if argv[1] == "--container" else "kvm\n", "")})
    assert host.virtualization(lab_node, run) == {"container": "podman", "vm": "kvm"}
    # Exit 1 with "none" is systemd-detect-virt's "not virtualized".
    run = FakeRun({"systemd-detect-virt": (1, "none\n", "")})
    assert host.virtualization(lab_node, run) == {"container": "none", "vm": "none"}


def test_virtualization_markers_without_the_tool(lab_node, tmp_path):
    assert host.virtualization(lab_node, FakeRun())["container"] == "podman"
    assert host.virtualization(str(hosts.gpu_machine_h100(tmp_path)), FakeRun()) == {"container": "docker", "vm": None}


def test_installed_modules_and_headers(lab_node, tmp_path):
    root = str(hosts.hgx_h100(tmp_path))
    assert host.installed_nvidia_modules(root) == {
        "6.8.0-87-generic": ["/lib/modules/6.8.0-87-generic/updates/dkms/nvidia.ko.zst"],
    }
    assert host.headers_installed("6.8.0-87-generic", root) is True
    assert host.headers_installed("6.8.0-90-generic", root) is False
    assert host.installed_nvidia_modules(lab_node) == {}


def test_installed_modules_under_debian_names(tmp_path):
    # Debian's DKMS packages install the module as nvidia-current.ko (seen on lab nodes).
    hosts.write(tmp_path, "lib/modules/6.1.0-56-amd64/updates/dkms/nvidia-current.ko.xz")
    hosts.write(tmp_path, "lib/modules/6.12.118+deb13-amd64/updates/dkms/nvidia-current.ko.xz")
    hosts.write(tmp_path, "lib/modules/6.12.118+deb13-amd64/updates/dkms/nvidia-current-uvm.ko.xz")
    assert host.installed_nvidia_modules(str(tmp_path)) == {
        "6.1.0-56-amd64": ["/lib/modules/6.1.0-56-amd64/updates/dkms/nvidia-current.ko.xz"],
        "6.12.118+deb13-amd64": ["/lib/modules/6.12.118+deb13-amd64/updates/dkms/nvidia-current.ko.xz"],
    }


def test_service_states_from_recorded_systemctl_show():
    run = FakeRun({"systemctl": (0, recorded("systemctl-show.txt"), "")})
    states = host.service_states(["systemd-journald", "nvidia-persistenced", "dbus.service"], run)
    assert states == {
        "systemd-journald": {"active": "active", "enabled": "static"},
        "nvidia-persistenced": {"active": "inactive", "enabled": None},
        "dbus.service": {"active": "active", "enabled": "static"},
    }
    assert run.calls[0][-3:] == ["systemd-journald.service", "nvidia-persistenced.service", "dbus.service"]
    failing = host.service_states(["x"], FakeRun({"systemctl": (1, "", "Failed to connect to bus")}))
    assert failing == {"x": {"active": None, "enabled": None}}


def test_nvml_library_follows_the_alternatives_links(tmp_path):
    # The layout Debian's libnvidia-ml1 installs (seen on a lab node).
    real = hosts.write(tmp_path, "usr/lib/x86_64-linux-gnu/nvidia/current/libnvidia-ml.so.535.261.03")
    os.makedirs(os.path.join(str(tmp_path), "etc/alternatives"))
    os.symlink(real, os.path.join(str(tmp_path), "etc/alternatives/nvidia--libnvidia-ml.so.1-x86_64-linux-gnu"))
    os.symlink("usr/lib", os.path.join(str(tmp_path), "lib"))
    os.symlink(
        os.path.join(str(tmp_path), "etc/alternatives/nvidia--libnvidia-ml.so.1-x86_64-linux-gnu"),
        os.path.join(str(tmp_path), "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"),
    )
    run = FakeRun({"ldconfig": (0, recorded("ldconfig-p-libnvidia-ml1.txt"), "")})
    assert host.nvml_library(run, str(tmp_path)) == {
        "path": "/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "version": "535.261.03",
    }


def test_nvml_library_absent():
    assert host.nvml_library(FakeRun({"ldconfig": (0, recorded("ldconfig-p-plain.txt"), "")})) is None
    assert host.nvml_library(FakeRun()) is None
