"""Verify the driver role on real Debian lab nodes: the DKMS build for Debian's
headers, the module's vermagic, holds, nouveau, persistenced, nvidia-smi, the
NVML venv, that the idempotence run rebuilt nothing, and that bad input stops
before any change. No GPU here: the module is built but never loaded."""

import json
import os
import re
import subprocess

import pytest
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
testinfra_hosts = [
    "podman://" + name for name in testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("gpu_nodes")
]
DRIVER_PACKAGES = ["nvidia-kernel-dkms", "nvidia-kernel-support", "nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "nvidia-alternative",
                   "firmware-nvidia-gsp"]
# What Debian's archive holds for each lab release (apt-cache policy in the nodes).
EXPECTED = {"12": "535.261.03", "13": "550.163.01"}


def release(host):
    return host.system_info.release.split(".")[0]


def kernel(host):
    """The kernel Debian's linux-headers-amd64 stands for: what the role built for."""
    out = host.check_output("apt-cache depends linux-headers-amd64")
    return re.search(r"Depends: linux-headers-(\S+)", out).group(1)


def driver_version(host):
    return host.package("nvidia-kernel-dkms").version.split("-")[0]


def module_path(host):
    """The module DKMS installed (bookworm: nvidia-current.ko, trixie: compressed .ko.xz)."""
    return host.check_output("ls /lib/modules/%s/updates/dkms/nvidia-current.ko*" % kernel(host))


def same_version_packages(host):
    """Every installed package at the driver's package version (Debian adds nvidia-legacy-check)."""
    version = host.package("nvidia-kernel-dkms").version
    lines = host.check_output("dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n'").splitlines()
    return sorted(line.split()[0] for line in lines if line.split()[1:] == [version, "installed"])


def test_the_pinned_or_default_version_is_installed(host):
    assert driver_version(host) == EXPECTED[release(host)]
    versions = set(host.package(p).version for p in DRIVER_PACKAGES)
    assert len(versions) == 1, "driver packages split: %s" % versions


def test_dkms_built_the_module_for_debians_headers(host):
    status = host.check_output("dkms status")
    assert "nvidia-current/%s, %s, x86_64: installed" % (driver_version(host), kernel(host)) in status
    # Nothing for the VM's own kernel, which has no headers.
    assert host.check_output("uname -r") not in status


def test_modinfo_vermagic_is_the_target_kernel(host):
    path = module_path(host)
    assert host.check_output("modinfo -F vermagic %s" % path).split()[0] == kernel(host)
    assert host.check_output("modinfo -F version %s" % path) == driver_version(host)


def test_the_idempotence_run_rebuilt_nothing(host):
    first = json.loads(host.file("/var/tmp/gpunode-molecule-first-build.json").content_string)
    module = first["module"]
    now = host.check_output("stat -c '%%Y %%i' %s" % module["path"]).split()
    assert [int(now[0]), int(now[1])] == [module["mtime"], module["inode"]]
    # DKMS keeps the build's log per kernel: it is older than the module, so no later build ran.
    make_log = "/var/lib/dkms/nvidia-current/%s/%s/x86_64/log/make.log" % (driver_version(host), kernel(host))
    assert int(host.check_output("stat -c %%Y %s" % make_log)) <= module["mtime"]
    assert first["version"] == driver_version(host) and int(first["held"]) == len(same_version_packages(host)) + 1


def test_driver_packages_are_held_and_kept_from_unattended_upgrades(host):
    held = host.check_output("apt-mark showhold").split()
    assert set(DRIVER_PACKAGES) <= set(same_version_packages(host))
    assert sorted(held) == sorted(same_version_packages(host) + ["nvidia-persistenced"])
    blacklist = host.file("/etc/apt/apt.conf.d/51gpunode-nvidia-driver").content_string
    for name in held:
        assert '"^%s$";' % re.escape(name) in blacklist


def test_version_pin_only_where_a_version_is_set(host):
    pin = host.file("/etc/apt/preferences.d/gpunode-nvidia-driver").content_string
    if release(host) == "12":
        assert "Pin: version 535.261.03-*" in pin and "Pin-Priority: 1001" in pin
        # That the pin holds apt below the newer security version: side_effect.yml, which adds that suite.
        assert "Candidate: 535.261.03-1" in host.check_output("apt-cache policy nvidia-kernel-dkms")
    else:
        assert "Pin:" not in pin


def test_nouveau_is_blacklisted_for_modprobe(host):
    assert "blacklist nouveau" in host.file("/etc/modprobe.d/gpunode-blacklist-nouveau.conf").content_string
    assert "blacklist nouveau" in host.check_output("modprobe -c")


def test_nvidia_smi_is_installed_and_finds_no_driver(host):
    assert host.check_output("command -v nvidia-smi") == "/usr/bin/nvidia-smi"
    result = host.run("nvidia-smi")
    # No GPU and no loadable module in a lab node: exit 9, "couldn't communicate".
    assert result.rc == 9 and "couldn't communicate with the NVIDIA driver" in result.stdout


def test_persistenced_is_enabled_and_skips_without_a_gpu(host):
    assert host.check_output("systemctl is-enabled nvidia-persistenced") == "enabled"
    host.run("systemctl start nvidia-persistenced")  # as at boot: the condition decides
    show = host.check_output("systemctl show -p ActiveState -p Result -p ExecCondition nvidia-persistenced")
    # ExecCondition failed: skipped (Result=exec-condition), not failed.
    assert "ActiveState=inactive" in show and re.search(r"Result=(success|exec-condition)", show)
    assert "/usr/local/libexec/gpunode/nvidia-gpu-present" in show
    assert host.check_output("systemctl is-system-running") == "running"


def test_nvml_venv_leaves_the_system_python_alone(host):
    venv = host.run("/opt/gpunode/venv/bin/python3 -c 'import pynvml; print(pynvml.__file__)'")
    assert venv.rc == 0 and venv.stdout.startswith("/opt/gpunode/venv/")
    assert host.file("/opt/gpunode/venv/lib").exists
    assert "nvidia_ml_py-13.615.71.dist-info" in host.check_output("ls /opt/gpunode/venv/lib/python3*/site-packages")
    assert host.run("python3 -c 'import pynvml'").rc == 1


def test_cuda_bindings_for_the_drivers_cuda_major_in_the_venv(host):
    # Driver 535 (bookworm) and 550 (trixie) support CUDA 12: the role's auto is cuda-bindings==12.*.
    site = host.check_output("ls /opt/gpunode/venv/lib/python3*/site-packages")
    found = re.findall(r"cuda_bindings-([0-9][^-\s]*)\.dist-info", site)
    assert len(found) == 1 and found[0].startswith("12."), site
    assert re.search(r"cuda_pathfinder-[0-9][^\s]*\.dist-info", site), site
    # No GPU here: the import must work all the same (cuInit is not called).
    imported = host.run("/opt/gpunode/venv/bin/python3 -c 'from cuda.bindings import driver; print(driver.__file__)'")
    assert imported.rc == 0 and imported.stdout.startswith("/opt/gpunode/venv/"), imported.stderr
    assert host.run("python3 -c 'import cuda.bindings'").rc == 1  # the system Python stays as it was
    # What the role published at the first converge: the installed version, nothing skipped.
    first = json.loads(host.file("/var/tmp/gpunode-molecule-first-build.json").content_string)
    assert first["cuda_bindings"] == found[0] and first["cuda_bindings_skipped"] is None


BAD_INPUT = [
    ("mol-driver-bookworm", {"driver_version": "", "driver_branch": "550"},
     "driver_branch 550 is not a branch that distro offers on Debian GNU/Linux 12 (bookworm) (known: 535)"),
    ("mol-driver-bookworm", {"driver_branch": "535", "driver_version": "550.163.01"},
     "driver_version 550.163.01 does not belong to driver_branch 535"),
    ("mol-driver-trixie", {"driver_source": "cuda_repo"},
     "NVIDIA does not publish its CUDA repository for Debian GNU/Linux 13 (trixie)"),
    ("mol-driver-trixie", {"driver_kernel_release": ""}, "no build headers for kernel %s" % os.uname().release),
]


@pytest.mark.parametrize("node, extra, message", BAD_INPUT, ids=["unknown-branch", "version-not-in-branch", "cuda-repo-unpublished", "no-headers"])
def test_bad_input_stops_before_any_change(host, node, extra, message):
    if host.backend.name != node:
        pytest.skip("runs on %s" % node)
    before = host.check_output("dpkg-query -W -f '${Package} ${Version} ${db:Status-Want}\\n' | sha256sum")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".cache", "collections"),
               ANSIBLE_ROLES_PATH=os.path.join(PROJECT, "roles"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, "--limit", node, os.path.join(SCENARIO, "converge.yml"), "-e", json.dumps(extra)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False,
    )
    out = result.stdout
    assert result.returncode != 0, out
    assert message in out, out
    assert re.search(r"TASK \[gpunode\.nvidia\.driver : Stop (on bad input )?before any change", out)
    recap = re.search(r"%s\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=1" % node, out)
    assert recap and recap.group(1) == "0", out[-2000:]
    assert host.check_output("dpkg-query -W -f '${Package} ${Version} ${db:Status-Want}\\n' | sha256sum") == before
