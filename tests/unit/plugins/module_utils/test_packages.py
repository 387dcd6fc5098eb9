"""module_utils/packages.py: installed versions and holds, availability from the cache,
headers packages, over outputs recorded on lab nodes."""

import os

from ansible_collections.gpunode.nvidia.plugins.module_utils import packages
from ansible_collections.gpunode.nvidia.plugins.plugin_utils.driver_common import upstream

from ... import hosts
from ...conftest import FIXTURES
from ...utils import FakeRun

KERNEL = "6.1.0-56-amd64"


def recorded(name):
    with open(os.path.join(FIXTURES, "commands", name)) as handle:
        return handle.read()


def test_headers_package_names():
    assert packages.headers_package("Debian", "6.1.0-47-amd64") == "linux-headers-6.1.0-47-amd64"
    assert packages.headers_package("RedHat", "5.14.0-427.el9.x86_64") == "kernel-devel-5.14.0-427.el9.x86_64"
    assert packages.headers_package(None, "6.1.0") is None


def test_package_available_from_recorded_apt_cache():
    run = FakeRun({"apt-cache": (0, recorded("apt-cache-policy-available.txt"), "")})
    assert packages.available("Debian", ["linux-headers-6.1.0-47-amd64"], run) == {"linux-headers-6.1.0-47-amd64": True}
    assert run.calls == [["apt-cache", "policy", "linux-headers-6.1.0-47-amd64"]]
    run = FakeRun({"apt-cache": (0, recorded("apt-cache-policy-unknown.txt"), "")})
    assert packages.available("Debian", ["linux-headers-6.18.44-fc-v657"], run)["linux-headers-6.18.44-fc-v657"] is False
    run = FakeRun({"apt-cache": (0, "foo:\n  Installed: (none)\n  Candidate: (none)\n", "")})
    assert packages.available("Debian", ["foo"], run)["foo"] is False
    assert packages.available("Debian", ["foo"], FakeRun())["foo"] is None
    assert packages.available("Debian", [], run) == {}


def test_package_availability_of_several_names_in_one_call():
    # apt-cache policy prints a block for each package it knows and nothing for the others.
    names = ["linux-headers-6.1.0-47-amd64", "no-such-pkg", "linux-headers-amd64"]
    run = FakeRun({"apt-cache": (0, recorded("apt-cache-policy-several.txt"), "")})
    assert packages.available("Debian", names, run) == {"linux-headers-6.1.0-47-amd64": True, "no-such-pkg": False, "linux-headers-amd64": True}
    assert run.calls == [["apt-cache", "policy"] + names]


def test_package_available_on_el_uses_the_cache_only():
    run = FakeRun({"dnf": (0, "kernel-devel-0:5.14.0-427.el9.x86_64\n", "")})
    assert packages.available("RedHat", ["kernel-devel-5.14.0-427.el9.x86_64"], run) == {"kernel-devel-5.14.0-427.el9.x86_64": True}
    assert "--cacheonly" in run.calls[0]


def test_package_versions_from_recorded_dpkg_query():
    # dpkg-query exits 1 when a name is not installed and still prints the others.
    run = FakeRun({"dpkg-query": (1, recorded("dpkg-query.txt"), "no packages found matching nvidia-kernel-dkms")})
    versions = packages.versions("Debian", ["libnvidia-ml1", "nvidia-kernel-dkms", "systemd"], run)
    assert versions == {"libnvidia-ml1": "535.261.03-1", "nvidia-kernel-dkms": None, "systemd": "252.39-1~deb12u2"}
    assert packages.versions("Debian", [], run) == {}
    assert len(run.calls) == 1


def test_package_versions_on_el():
    # rpm -qa prints nothing for a name that is not installed.
    out = "nvidia-driver\t0:580.95.05-1.el9\tx86_64\n"
    run = FakeRun({"rpm": (0, out, "")})
    assert packages.versions("RedHat", ["nvidia-driver", "dcgm"], run) == {
        "nvidia-driver": "580.95.05-1.el9", "dcgm": None,
    }


def test_packaged_kernel_of_a_headers_metapackage():
    # apt-cache depends linux-headers-amd64, as a bookworm lab node printed it.
    debian = "linux-headers-amd64\n  Depends: linux-headers-6.1.0-56-amd64\n"
    assert packages.packaged_kernel("Debian", "linux-headers-amd64", FakeRun({"apt-cache": (0, debian, "")})) == KERNEL
    ubuntu = "linux-headers-generic\n  Depends: linux-headers-6.8.0-87-generic\n"
    assert packages.packaged_kernel("Debian", "linux-headers-generic", FakeRun({"apt-cache": (0, ubuntu, "")})) == "6.8.0-87-generic"
    run = FakeRun({"dnf": (0, "5.14.0-503.15.1.el9_5.x86_64\n", "")})
    assert packages.packaged_kernel("RedHat", "kernel-devel", run) == "5.14.0-503.15.1.el9_5.x86_64"
    assert run.calls[0][-1] == "kernel-devel" and "--cacheonly" in run.calls[0]
    # An unknown package prints nothing useful and apt-cache exits 0 with "W: Unable to locate".
    assert packages.packaged_kernel("Debian", "linux-headers-nope", FakeRun({"apt-cache": (0, "", "W: Unable to locate package")})) is None


def test_installed_and_held_packages_from_dpkg():
    run = FakeRun({"dpkg-query": (1, recorded("dpkg-query-driver.txt"), "dpkg-query: no packages found matching libcuda1*\n")})
    versions, held = packages.installed("Debian", ["nvidia-*", "libnvidia-*", "libcuda1*", "nvidia-persistenced"], run)
    assert versions["nvidia-kernel-dkms"] == "535.261.03-1" and versions["nvidia-persistenced"] == "535.171.04-1~deb12u1"
    assert "nvidia-kernel-dkms" in held and "nvidia-modprobe" not in held
    assert "nvidia-kernel-common" in versions  # installed, not held: its own version
    assert run.calls[0][:4] == ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\t${db:Status-Want}\n"]


def test_installed_packages_from_rpm_with_epochs(tmp_path):
    out = "kmod-nvidia-latest-dkms\t3:550.163.01-1.el9\tx86_64\nnvidia-driver-cuda\t3:550.163.01-1.el9\tx86_64\nkernel-devel\t0:5.14.0-427.el9\tx86_64\n"
    versions, held = packages.installed("RedHat", ["nvidia-*", "kmod-nvidia-*", "kernel-devel"], FakeRun({"rpm": (0, out, "")}), str(tmp_path))
    assert versions == {"kmod-nvidia-latest-dkms": "3:550.163.01-1.el9", "nvidia-driver-cuda": "3:550.163.01-1.el9", "kernel-devel": "5.14.0-427.el9"}
    # The plan reads the driver version out of the epoch'd package version.
    assert held == [] and upstream(versions["kmod-nvidia-latest-dkms"]) == "550.163.01"


def test_dnf_versionlock_entries(tmp_path):
    entries = "# added by dnf\nnvidia-driver-cuda-3:550.163.01-1.el9.*\nkmod-nvidia-latest-dkms-3:550.163.01-1.el9.*\n"
    hosts.write(tmp_path, "etc/dnf/plugins/versionlock.list", entries)
    names = ["nvidia-driver", "nvidia-driver-cuda", "kmod-nvidia-latest-dkms"]
    assert packages.dnf_locked(names, str(tmp_path)) == ["kmod-nvidia-latest-dkms", "nvidia-driver-cuda"]
    assert packages.dnf_locked(["nvidia-driver"], str(tmp_path / "none")) == []
