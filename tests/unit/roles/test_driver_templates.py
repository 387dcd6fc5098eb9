"""The driver role's templates rendered with Ansible's own templating, for the
repositories the lab cannot reach (NVIDIA's CUDA repository for Ubuntu and EL,
a mirror) and for the files the lab nodes also show.

The GPU-presence check that guards nvidia-persistenced is run for real with
/bin/sh against sysfs trees of a GPU host and of a lab node.
"""

import os
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core >= 2.19 renders only text marked as trusted
    from ansible.template import trust_as_template
except ImportError:  # 2.16 to 2.18 (the controller matrix): every string is a template
    def trust_as_template(text):
        return text

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan as dp

from .. import hosts
from ..driver_data import FIXTURES, ROLE, inputs, os_data
from .test_driver_data import facts

TEMPLATES = os.path.join(ROLE, "templates")
HEADER = "# Managed by gpunode.nvidia (driver role): local changes are overwritten.\n"


def render(path, **variables):
    with open(os.path.join(TEMPLATES, path)) as handle:
        text = handle.read()
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(text))


def planned(os_id, family, name, release, **overrides):
    data, fam = os_data(os_id, family)
    result = dp.plan(inputs(**overrides), data, fam, facts(os_id, family, name, release))
    assert result["problems"] == []
    return result


def test_ubuntu_cuda_repository_deb822():
    plan = planned("ubuntu", "Debian", "Ubuntu", "24.04", source="cuda_repo", branch="580", fabricmanager="never")
    assert plan["repository"]["file"] == "/etc/apt/sources.list.d/gpunode-nvidia-driver.sources"
    text = render(plan["repository"]["template"], _driver_plan=plan)
    assert text == HEADER + (
        "# NVIDIA CUDA repository (ubuntu2404/x86_64)\n"
        "Types: deb\n"
        "URIs: https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/\n"
        "Suites: /\n"
        "Signed-By: /etc/apt/keyrings/gpunode-nvidia-driver.asc\n"
    )


def test_mirror_with_suite_and_components():
    plan = planned("debian", "Debian", "Debian", "12", source="mirror", branch="580", mirror_url="https://repo.example/nvidia/debian12",
                   mirror_key_url="https://repo.example/nvidia/key.gpg", mirror_suite="bookworm", mirror_components=["main", "extra"],
                   fabricmanager="never")
    text = render(plan["repository"]["template"], _driver_plan=plan)
    assert ("URIs: https://repo.example/nvidia/debian12\nSuites: bookworm\nComponents: main extra\n"
            "Signed-By: /etc/apt/keyrings/gpunode-nvidia-driver.gpg") in text


def test_rhel_cuda_repository_file():
    plan = planned("rocky", "RedHat", "Rocky Linux", "9", source="cuda_repo", branch="570", fabricmanager="never")
    assert plan["repository"]["file"] == "/etc/yum.repos.d/gpunode-nvidia-driver.repo"
    text = render(plan["repository"]["template"], _driver_plan=plan)
    assert text == HEADER + (
        "[gpunode-nvidia-driver]\n"
        "name=NVIDIA CUDA repository (rhel9/x86_64)\n"
        "baseurl=https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        "gpgkey=https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/D42D0685.pub\n"
    )


def test_apt_pin_follows_driver_version():
    pinned = planned("debian", "Debian", "Debian", "12", version="535.261.03", fabricmanager="never")
    text = render("etc/apt/preferences.d/gpunode-nvidia-driver.j2", _driver_plan=pinned)
    stanza = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert stanza == [
        "Package: nvidia-* libnvidia-* firmware-nvidia-* libcuda1* cuda-drivers* xserver-xorg-video-nvidia*",
        "Pin: version 535.261.03-*",
        "Pin-Priority: 1001",
    ]
    unpinned = planned("debian", "Debian", "Debian", "12", fabricmanager="never")
    assert [line for line in render("etc/apt/preferences.d/gpunode-nvidia-driver.j2", _driver_plan=unpinned).splitlines()
            if line and not line.startswith("#")] == []


def test_unattended_upgrades_blacklist_is_anchored_and_escaped():
    text = render("etc/apt/apt.conf.d/51gpunode-nvidia-driver.j2", _driver_outcome={"held": ["libnvidia-ml1", "nvidia-tesla-535-smi", "libstdc++6"]})
    assert "Unattended-Upgrade::Package-Blacklist {" in text
    assert '    "^libnvidia\\-ml1$";\n    "^nvidia\\-tesla\\-535\\-smi$";\n    "^libstdc\\+\\+6$";\n};' in text


def test_nouveau_blacklist_and_dkms_signing():
    assert render("etc/modprobe.d/gpunode-blacklist-nouveau.conf.j2").splitlines()[-2:] == ["blacklist nouveau", "options nouveau modeset=0"]
    plan = {"secure_boot": {"key": "/root/mok/MOK.priv", "cert": "/root/mok/MOK.der"}}
    text = render("etc/dkms/framework.conf.d/gpunode-mok.conf.j2", _driver_plan=plan)
    assert text.splitlines()[-2:] == ['mok_signing_key="/root/mok/MOK.priv"', 'mok_certificate="/root/mok/MOK.der"']


def test_persistenced_dropin_points_at_the_installed_check():
    dropin = render("etc/systemd/system/nvidia-persistenced.service.d/gpunode-gpu-present.conf.j2")
    with open(os.path.join(ROLE, "tasks", "install.yml")) as handle:
        tasks = yaml.safe_load(handle)
    dest = [t["ansible.builtin.template"]["dest"] for t in tasks if "nvidia-gpu-present.j2" in str(t.get("ansible.builtin.template", {}).get("src"))]
    assert dest == ["/usr/local/libexec/gpunode/nvidia-gpu-present"]
    assert "[Service]\nExecCondition=%s" % dest[0] in dropin


@pytest.mark.parametrize(
    "tree, code",
    [("hgx", 0), ("gpu_machine", 0), ("lab", 1), ("empty", 1)],
)
def test_gpu_present_check_runs_on_sysfs(tmp_path, tree, code):
    if tree == "hgx":
        sysfs = os.path.join(str(hosts.hgx_h100(tmp_path)), "sys/bus/pci/devices")
    elif tree == "gpu_machine":
        sysfs = os.path.join(str(hosts.gpu_machine_h100(tmp_path)), "sys/bus/pci/devices")
    elif tree == "lab":
        sysfs = os.path.join(FIXTURES, "hosts", "lab-node-bookworm", "sys/bus/pci/devices")
    else:
        sysfs = str(tmp_path)
    script = render("usr/local/libexec/gpunode/nvidia-gpu-present.j2").replace("/sys/bus/pci/devices", sysfs)
    assert script.startswith("#!/bin/sh\n")
    assert subprocess.call(["/bin/sh", "-c", script]) == code
