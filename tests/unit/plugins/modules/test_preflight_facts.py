"""preflight_facts: gather() over prepared trees, main() for real on this machine."""

import hashlib
import os
import platform

from ansible_collections.gpunode.nvidia.plugins.modules import preflight_facts

from ... import hosts
from ...utils import FakeRun, run_module

PARAMS = {"kernel_release": None, "packages": [], "services": [], "files": []}


def no_sha(path):
    raise AssertionError("no file was asked for")


def test_hgx_node(tmp_path):
    root = str(hosts.hgx_h100(tmp_path))
    run = FakeRun({"apt-cache": (0, "linux-headers-6.8.0-87-generic:\n  Installed: 6.8.0-87.88\n  Candidate: 6.8.0-87.88\n", "")})
    facts = preflight_facts.gather(root, dict(PARAMS, kernel_release="6.8.0-87-generic"), run, no_sha)
    assert facts["os"]["family"] == "Debian" and facts["os"]["major_version"] == "24.04"
    assert facts["gpus"]["count"] == 8 and facts["nvswitches"]["count"] == 4
    assert len(facts["nvswitches"]["procfs"]) == 4
    assert facts["modules"]["nvidia"] is True and facts["modules"]["nouveau"] is False
    assert facts["modules"]["source"] == "/proc/modules"
    assert facts["driver"]["loaded"]["version"] == "580.159.04"
    assert facts["driver"]["installed_modules"] == {
        "6.8.0-87-generic": ["/lib/modules/6.8.0-87-generic/updates/dkms/nvidia.ko.zst"],
    }
    assert facts["kernel"]["target"] == "6.8.0-87-generic"
    assert facts["kernel"]["headers_installed"] is True
    assert facts["kernel"]["headers_package"] == "linux-headers-6.8.0-87-generic"
    assert facts["kernel"]["headers_available"] is True
    assert facts["secure_boot"] == {"firmware": "uefi", "enabled": False, "setup_mode": False}
    assert facts["init"]["systemd"] is True


def test_gpu_machine_without_systemd(tmp_path):
    root = str(hosts.gpu_machine_h100(tmp_path))
    facts = preflight_facts.gather(root, PARAMS, FakeRun(), no_sha)
    assert facts["gpus"]["count"] == 1 and facts["gpus"]["devices"][0]["device"] == "0x2330"
    assert facts["init"] == {"pid1": "init", "systemd": False}
    assert facts["virtualization"]["container"] == "docker"
    assert facts["driver"]["loaded"]["kernel_module_type"] == "open"
    # Unknown tools are reported as unknown, never guessed.
    assert facts["kernel"]["headers_available"] is None
    assert facts["driver"]["nvml_library"] is None


def test_requested_packages_services_files(tmp_path):
    root = str(hosts.workstation_nouveau(tmp_path))
    run = FakeRun({
        "rpm": (0, "kernel-devel\t0:5.14.0-427.el9\tx86_64\n", ""),
        "systemctl": (0, "Id=nvidia-persistenced.service\nActiveState=failed\nUnitFileState=enabled\n", ""),
    })
    existing = hosts.write(tmp_path, "etc/modprobe.d/blacklist-nouveau.conf", "blacklist nouveau\n")
    params = dict(PARAMS, packages=["kernel-devel", "akmod-nvidia"], services=["nvidia-persistenced"],
                  files=[existing, os.path.join(str(tmp_path), "absent.conf")])
    facts = preflight_facts.gather(root, params, run, lambda p: "sha-of-" + os.path.basename(p))
    assert facts["os"]["family"] == "RedHat"
    assert facts["modules"]["nouveau"] is True
    assert facts["gpus"]["devices"][0]["driver"] == "nouveau"
    assert facts["secure_boot"]["enabled"] is True
    assert facts["packages"] == {"kernel-devel": "5.14.0-427.el9", "akmod-nvidia": None}
    assert facts["services"] == {"nvidia-persistenced": {"active": "failed", "enabled": "enabled"}}
    assert facts["files"] == {existing: "sha-of-blacklist-nouveau.conf", os.path.join(str(tmp_path), "absent.conf"): None}


def test_main_on_this_machine(capsys, tmp_path):
    """The real module on the machine running the tests (a GPU-less VM in CI)."""
    probe = tmp_path / "probe.txt"
    probe.write_text("x\n")
    failed, result = run_module(preflight_facts.main, {"files": [str(probe)], "packages": ["python3"]}, capsys)
    assert not failed and result["changed"] is False
    facts = result["ansible_facts"]["gpunode_preflight"]
    assert facts["os"]["id"] == platform.freedesktop_os_release()["ID"]
    assert facts["architecture"] == platform.machine()
    assert facts["kernel"]["running"] == platform.release() == facts["kernel"]["target"]
    assert facts["files"] == {str(probe): hashlib.sha256(b"x\n").hexdigest()}
    nvidia = [d for d in os.listdir("/sys/bus/pci/devices")
              if open("/sys/bus/pci/devices/%s/vendor" % d).read().strip() == "0x10de"
              and open("/sys/bus/pci/devices/%s/class" % d).read().startswith(("0x0300", "0x0302"))]
    assert facts["gpus"]["count"] == len(nvidia)


def test_main_rejects_unknown_options(capsys):
    failed, result = run_module(preflight_facts.main, {"kernel": "6.1"}, capsys)
    assert failed and "Unsupported parameters" in result["msg"]
