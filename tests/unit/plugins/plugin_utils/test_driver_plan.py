"""The driver role's plan: input validation, branch, module type, packages,
repository and Fabric Manager, over the role's real per-OS data."""

import pytest

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan as dp

from ... import hosts
from ...driver_data import gather, with_gpus
from .driver_cases import AMPERE, BLACKWELL, DEBIAN, GH200, HOPPER, PASCAL, RHEL, UBUNTU, plan


# Bad input stops before any change, with a message that says what to do.


def test_unknown_branch_names_the_known_ones(bookworm):
    result = plan(bookworm, DEBIAN, branch="550")
    assert len(result["problems"]) == 1
    assert "driver_branch 550 is not a branch that distro offers on Debian GNU/Linux 12" in result["problems"][0]
    assert "known: 535" in result["problems"][0] and "driver_extra_branches" in result["problems"][0]


def test_extra_branches_let_a_new_branch_through(bookworm):
    result = plan(bookworm, DEBIAN, branch="550", extra_branches=["550"])
    assert result["problems"] == [] and result["branch"] == "550"


def test_cuda_repo_on_a_release_nvidia_does_not_publish_for(trixie):
    result = plan(trixie, DEBIAN, source="cuda_repo")
    assert any("NVIDIA does not publish its CUDA repository for Debian GNU/Linux 13" in p and "debian12" in p for p in result["problems"])


def test_cuda_repo_where_published_gives_the_repository(bookworm):
    result = plan(bookworm, DEBIAN, source="cuda_repo", branch="570")
    repo = result["repository"]
    assert result["problems"] == []
    assert repo["url"] == "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/"
    assert repo["key_url"] == repo["url"] + "3bf863cc.pub"
    assert repo["key_file"] == "/etc/apt/keyrings/gpunode-nvidia-driver.asc"
    assert result["dkms"]["locked"] == ["nvidia-open-570"]  # open: NVIDIA's default from 560
    assert plan(bookworm, DEBIAN, source="cuda_repo", branch="550")["dkms"]["locked"] == ["cuda-drivers-550"]


def test_version_outside_the_branch(bookworm):
    result = plan(bookworm, DEBIAN, branch="535", version="550.163.01")
    assert result["problems"] == [
        "driver_version 550.163.01 does not belong to driver_branch 535: set the branch to 550, or pick a 535.x version"
    ]


def test_package_version_is_not_a_driver_version(bookworm):
    result = plan(bookworm, DEBIAN, version="535.261.03-1")
    assert "not a driver version" in result["problems"][0]


def test_version_alone_sets_the_branch(trixie):
    result = plan(trixie, DEBIAN, version="535.274.02")
    assert result["problems"] == [] and result["branch"] == "535"
    # trixie's 535 is the Tesla branch, under its own package names and proprietary only.
    assert result["dkms"]["locked"][0] == "nvidia-tesla-535-kernel-dkms"
    assert "libnvidia-tesla-535-ml1" in result["dkms"]["locked"]


def test_rhel_has_no_distro_driver(rocky_sb):
    result = plan(rocky_sb, RHEL, source="distro")
    assert "does not ship the NVIDIA driver in its own repositories; use driver_source: cuda_repo or mirror" in result["problems"][0]


def test_mirror_needs_url_and_key(bookworm):
    assert "driver_mirror_url and driver_mirror_key_url" in plan(bookworm, DEBIAN, source="mirror")["problems"][0]


def test_mirror_on_an_unpublished_release_is_allowed(trixie):
    result = plan(trixie, DEBIAN, source="mirror", branch="580", mirror_url="https://repo.example/nvidia/", mirror_key_url="file:///etc/nvidia.gpg",
                  mirror_suite="stable", mirror_components=["main"])
    assert result["problems"] == []
    assert result["repository"]["key_file"] == "/etc/apt/keyrings/gpunode-nvidia-driver.gpg"
    assert (result["repository"]["suites"], result["repository"]["components"]) == ("stable", ["main"])


def test_malformed_branch(bookworm):
    assert "is not a driver branch" in plan(bookworm, DEBIAN, branch="r535")["problems"][0]


def test_distro_release_without_data(bookworm):
    facts = dict(bookworm, os=dict(bookworm["os"], major_version="11", version="11"))
    assert "no driver data for" in plan(facts, DEBIAN)["problems"][0]


# Kernel module flavour.


@pytest.mark.parametrize(
    "branch, gpus, wanted, expected",
    [
        ("580", [HOPPER], "auto", "open"),
        ("550", [HOPPER], "auto", "proprietary"),
        ("550", [BLACKWELL], "auto", "open"),
        ("570", [GH200], "auto", "open"),
        ("580", [PASCAL], "auto", "proprietary"),
        ("580", [], "auto", "open"),
        ("535", [AMPERE], "open", "open"),
        ("580", [HOPPER], "proprietary", "proprietary"),
    ],
)
def test_module_type(hgx, branch, gpus, wanted, expected):
    result = plan(with_gpus(hgx, *gpus), UBUNTU, branch=branch, kernel_module_type=wanted)
    assert result["problems"] == [] and result["module_type"] == expected
    if expected == "open":
        assert result["dkms"]["locked"][0].endswith("-server-open")


@pytest.mark.parametrize(
    "gpus, wanted, message",
    [
        ([BLACKWELL, PASCAL], "auto", "no one driver serves both"),
        ([BLACKWELL], "proprietary", "need the open kernel modules"),
        ([PASCAL], "open", "predate Turing"),
    ],
)
def test_module_type_conflicts(hgx, gpus, wanted, message):
    result = plan(with_gpus(hgx, *gpus), UBUNTU, branch="580", kernel_module_type=wanted)
    assert message in result["problems"][0]


def test_branch_without_open_modules(trixie):
    # Debian 13's Tesla 535 packages no open modules.
    assert "not packaged for branch 535" in plan(trixie, DEBIAN, branch="535", kernel_module_type="open")["problems"][0]


def test_old_branch_on_blackwell_stops(tmp_path):
    ubuntu_2204 = {"id": "ubuntu", "family": "Debian", "major_version": "22.04", "version": "22.04", "name": "Ubuntu 22.04"}
    facts = with_gpus(dict(gather(hosts.hgx_h100, tmp_path), os=ubuntu_2204), BLACKWELL)
    result = plan(facts, UBUNTU, branch="470")
    assert "need the open kernel modules, which branch 470 does not package here" in result["problems"][0]


# Fabric Manager only where NVSwitches are, at the driver's version.


def test_fabricmanager_on_nvswitch_hosts(hgx):
    assert plan(hgx, UBUNTU, branch="570")["fabricmanager"] == {"packages": ["nvidia-fabricmanager-570"]}
    assert plan(hgx, UBUNTU, source="cuda_repo", branch="580")["fabricmanager"] == {"packages": ["nvidia-fabricmanager"]}
    assert plan(hgx, UBUNTU, source="cuda_repo", branch="570")["fabricmanager"] == {"packages": ["nvidia-fabricmanager-570"]}
    assert plan(hgx, UBUNTU, fabricmanager="never")["fabricmanager"] is None


def test_no_fabricmanager_without_nvswitches(bookworm):
    assert plan(bookworm, DEBIAN)["fabricmanager"] is None


def test_debian_has_no_fabricmanager(hgx):
    facts = dict(hgx, os={"id": "debian", "family": "Debian", "major_version": "12", "version": "12", "name": "Debian GNU/Linux 12"})
    result = plan(facts, DEBIAN)
    assert "4 NVSwitch(es) and needs Fabric Manager, which distro does not package" in result["problems"][0]


def test_unresolved_packaged_kernel_stops(bookworm):
    # vars/main.yml leaves "packaged" in place when the node could not resolve it.
    result = plan(bookworm, DEBIAN, kernel_release="packaged")
    assert result["problems"] == [
        "driver_kernel_release packaged: linux-headers-amd64 names no kernel headers package in the package cache"
        " (refresh the cache, or set driver_kernel_release to a kernel release)"
    ]


# cuda-bindings: matched to the CUDA major version of the branch the role installs.


@pytest.mark.parametrize(
    "wanted, branch, expected",
    [
        ("auto", "535", {"requirement": "cuda-bindings==12.*", "pin": "12.*"}),
        ("auto", "575", {"requirement": "cuda-bindings==12.*", "pin": "12.*"}),
        ("auto", "580", {"requirement": "cuda-bindings==13.*", "pin": "13.*"}),
        ("", "590", {"requirement": "cuda-bindings==13.*", "pin": "13.*"}),
        ("cuda-bindings==12.9.4", "580", {"requirement": "cuda-bindings==12.9.4", "pin": "12.9.4"}),
        ("cuda-bindings>=12.6,<13", "550", {"requirement": "cuda-bindings>=12.6,<13", "pin": ""}),
        ("none", "580", None),
    ],
)
def test_cuda_bindings_requirement(wanted, branch, expected):
    assert dp.cuda_bindings(wanted, branch) == expected


def test_the_plan_carries_cuda_bindings_for_the_resolved_branch(bookworm, trixie):
    # The lab's releases take Debian's default branches (535, 550): CUDA 12.
    assert plan(bookworm, DEBIAN)["nvml"]["cuda_bindings"]["requirement"] == "cuda-bindings==12.*"
    assert plan(trixie, DEBIAN)["nvml"]["cuda_bindings"]["requirement"] == "cuda-bindings==12.*"
    repo = plan(bookworm, DEBIAN, source="cuda_repo")  # NVIDIA's default there: 580
    assert repo["branch"] == "580" and repo["nvml"]["cuda_bindings"]["requirement"] == "cuda-bindings==13.*"
    assert repo["nvml"]["base"] == "/usr/bin/python3"
    assert plan(bookworm, DEBIAN, cuda_bindings_package="none")["nvml"]["cuda_bindings"] is None
    assert "cuda_bindings" not in plan(bookworm, DEBIAN, nvml_install="distro")["nvml"]
