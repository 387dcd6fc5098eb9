"""The driver role's per-OS data: every release, source, branch and flavour it lists
resolves to well-formed package names and repository URLs. (Defaults and
argument specs agree: tests/unit/roles/test_argument_specs.py on main.)

Ubuntu's archive, RHEL's mirrors and NVIDIA's CUDA repository are not reachable
from the lab: these tests check the data is consistent and complete, not that
the packages exist upstream (Debian's were read with apt-cache in lab nodes).
"""

import re

import pytest

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_changes as dc
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan as dp

from ..driver_data import ROLE, inputs, load, os_data

DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
RPM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.-]+$")

OSES = [
    # (os id, family, name, release)
    ("debian", "Debian", "Debian", "12"),
    ("debian", "Debian", "Debian", "13"),
    ("ubuntu", "Debian", "Ubuntu", "22.04"),
    ("ubuntu", "Debian", "Ubuntu", "24.04"),
    ("rhel", "RedHat", "Red Hat Enterprise Linux", "8"),
    ("rocky", "RedHat", "Rocky Linux", "9"),
    ("almalinux", "RedHat", "AlmaLinux", "9"),
]


def facts(os_id, family, name, release, arch="x86_64"):
    return {
        "os": {"id": os_id, "family": family, "name": "%s %s" % (name, release), "version": release, "major_version": release},
        "architecture": arch,
        "kernel": {"running": "6.8.0-87-generic", "target": "6.8.0-87-generic"},
        "gpus": {"count": 0, "devices": []},
        "nvswitches": {"count": 2, "devices": [], "procfs": []},
        "secure_boot": {"enabled": False},
        "virtualization": {"container": "none"},
        "modules": {"nouveau": False},
    }


def combinations():
    for os_id, family, name, release in OSES:
        data, _family = os_data(os_id, family)
        for source, src in sorted((data["sources"] or {}).items()):
            if not src:
                continue
            if source == "distro":
                release_data = src["releases"].get(release)
                if not release_data:
                    continue
                branches = release_data["branches"]
            else:
                if release not in src["dists"]:
                    continue
                branches = dict((b, {}) for b in src["branches"])
            for branch, info in sorted(branches.items()):
                for flavour in ("proprietary", "open"):
                    if flavour == "open" and (info.get("open") is False or int(branch) < dp.OPEN_FIRST_BRANCH):
                        continue
                    yield pytest.param(os_id, family, name, release, source, branch, flavour, id="%s%s-%s-%s-%s" % (os_id, release, source, branch, flavour))


@pytest.mark.parametrize("os_id, family, name, release, source, branch, flavour", list(combinations()))
def test_every_listed_combination_resolves(os_id, family, name, release, source, branch, flavour):  # noqa: PLR0917 (pytest parameters)
    data, fam = os_data(os_id, family)
    packaged_fm = bool((data["sources"][source] or {}).get("fabricmanager"))
    given = inputs(source=source, branch=branch, kernel_module_type=flavour, version="%s.100.01" % branch,
                   fabricmanager="auto" if packaged_fm else "never")
    result = dp.plan(given, data, fam, facts(os_id, family, name, release))
    assert result["problems"] == [], result["problems"]
    assert result["module_type"] == flavour
    change = dc.changes(result, {"available": {}}, given, fam)
    name_re = DEB_NAME if fam["package_manager"] == "apt" else RPM_NAME
    names = change["locked"] + change["companions"] + change["headers"]
    for package in names:
        assert "{" not in package and name_re.match(package), package
    # Every locked package is asked for at exactly the driver version, the others by name.
    spec = "={}-*" if fam["package_manager"] == "apt" else "-{}"
    assert change["install"][: len(change["locked"])] == [n + spec.format(given["version"]) for n in change["locked"]]
    # Fabric Manager (2 NVSwitches in these facts) rides with the driver's version where packaged.
    if result["fabricmanager"]:
        assert set(result["fabricmanager"]["packages"]) <= set(change["locked"])
    if source == "cuda_repo":
        repo = result["repository"]
        assert repo["url"].startswith("https://developer.download.nvidia.com/compute/cuda/repos/") and repo["url"].endswith("/x86_64/")
        assert repo["key_url"].endswith(".pub")


def test_every_os_names_its_headers_metapackage():
    for os_id, family, _name, _release in OSES:
        data = os_data(os_id, family)[0]
        assert sorted(data["headers_meta"]) == ["aarch64", "x86_64"], os_id


def test_published_cuda_repositories():
    # What NVIDIA publishes (nvidia-facts.md, Driver); everything else is refused for cuda_repo.
    dists = {}
    for os_id, family, _name, _release in OSES:
        cuda = os_data(os_id, family)[0]["sources"]["cuda_repo"]
        dists.update(cuda["dists"])
    assert sorted(set(dists.values())) == ["debian12", "rhel8", "rhel9", "ubuntu2204", "ubuntu2404"]


def test_sbsa_for_arm_servers():
    data, fam = os_data("ubuntu", "Debian")
    result = dp.plan(inputs(source="cuda_repo", branch="580"), data, fam, facts("ubuntu", "Debian", "Ubuntu", "24.04", arch="aarch64"))
    assert result["repository"]["url"] == "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/sbsa/"


def test_debian_package_sets_are_what_the_archive_ships():
    # Read in lab nodes with apt-cache show: the packages built from nvidia-graphics-drivers
    # (and nvidia-open-gpu-kernel-modules) at the driver's version, and persistenced apart.
    data, fam = os_data("debian", "Debian")
    base = facts("debian", "Debian", "Debian", "12")
    proprietary = dp.plan(inputs(kernel_module_type="proprietary"), data, fam, base)
    assert proprietary["dkms"]["locked"] == [
        "nvidia-kernel-dkms", "nvidia-kernel-support", "nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "nvidia-alternative", "firmware-nvidia-gsp",
    ]
    assert proprietary["companions"] == ["nvidia-persistenced"]
    open_modules = dp.plan(inputs(kernel_module_type="open"), data, fam, base)
    assert open_modules["dkms"]["locked"][:2] == ["nvidia-open-kernel-dkms", "nvidia-open-kernel-support"]


def test_internal_vars_are_prefixed():
    for name in ("main", "Debian", "Ubuntu", "RedHat"):
        for key in load(ROLE, "vars", name + ".yml"):
            assert key.startswith("_driver_"), key
