"""The driver role's decisions: validation, module type, packages, Secure Boot,
GPU users, verification and reboot, over the role's real per-OS data."""

import pytest

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan as dp

from ... import hosts
from ...driver_data import gather, inputs, lab_facts, os_data, with_gpus
from ...utils import FakeRun

HOPPER, BLACKWELL, PASCAL, GH200, AMPERE = "0x2330", "0x2901", "0x1b80", "0x2342", "0x20b0"
DEBIAN, UBUNTU, RHEL = ("debian", "Debian"), ("ubuntu", "Debian"), ("rocky", "RedHat")


def plan(facts, which, **overrides):
    data, family = os_data(*which)
    return dp.plan(inputs(**overrides), data, family, facts)


def family_of(which):
    return os_data(*which)[1]


@pytest.fixture
def bookworm(tmp_path):
    return lab_facts("12", tmp_path)


@pytest.fixture
def trixie(tmp_path):
    return lab_facts("13", tmp_path)


@pytest.fixture
def hgx(tmp_path):
    run = FakeRun({"apt-cache": (0, "  Candidate: 6.8.0-87.88\n", "")})
    return gather(hosts.hgx_h100, tmp_path, kernel="6.8.0-87-generic", run=run)


@pytest.fixture
def rocky_sb(tmp_path):
    return gather(hosts.workstation_nouveau, tmp_path)


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


def test_bad_choices_are_named(bookworm):
    result = plan(bookworm, DEBIAN, reboot="sometimes", source="distro")
    assert result["problems"] == ["driver_reboot must be one of never, if_needed, always, not 'sometimes'"]
    assert plan(bookworm, DEBIAN, source="runfile")["problems"][0].startswith("driver_source must be one of")


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


def test_fabricmanager_is_version_locked_with_the_driver(hgx):
    result = plan(hgx, UBUNTU, branch="570", version="570.195.03")
    change = dp.changes(result, {"available": {}}, inputs(branch="570", version="570.195.03"), family_of(UBUNTU))
    assert "nvidia-fabricmanager-570=570.195.03-*" in change["install"]


# What changes on a node.


def converged_state(version="535.261.03-1", held=True):
    names = ["nvidia-kernel-dkms", "nvidia-kernel-support", "nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "nvidia-alternative", "firmware-nvidia-gsp"]
    packages = dict((n, version) for n in names)
    packages.update({"nvidia-persistenced": "535.171.04-1~deb12u1", "nvidia-modprobe": "535.161.07-1~deb12u1",
                     "linux-headers-6.1.0-50-amd64": "6.1.176-1", "python3-venv": "3.11.2-1+b1", "python3-packaging": "23.0-1"})
    return {
        "packages": packages,
        "held": sorted(names + ["nvidia-persistenced"]) if held else [],
        "available": {"linux-headers-6.1.0-50-amd64": True},
        "headers": {"6.1.0-50-amd64": True},
        "processes": [],
        "services": {},
        "nvml_library": {"path": "/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "version": version.split("-")[0]},
        "loaded": None,
    }


def lab_plan(bookworm, **overrides):
    overrides.setdefault("kernel_release", "6.1.0-50-amd64")
    return plan(bookworm, DEBIAN, **overrides), inputs(**overrides)


def test_converged_node_changes_nothing(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    change = dp.changes(result, converged_state(), given, family_of(DEBIAN))
    assert change["problems"] == [] and change["install_needed"] is False and change["changing"] is False


def test_fresh_node_installs_the_pinned_set(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    change = dp.changes(result, {"packages": {}, "available": {"linux-headers-6.1.0-50-amd64": True}}, given, family_of(DEBIAN))
    assert change["install_needed"] and not change["changing"]
    assert change["install"][:2] == ["nvidia-kernel-dkms=535.261.03-*", "nvidia-kernel-support=535.261.03-*"]
    assert change["install"][-4:] == ["nvidia-persistenced", "linux-headers-6.1.0-50-amd64", "python3-venv", "python3-packaging"]


def test_new_pin_changes_exactly_the_driver_packages(bookworm):
    result, given = lab_plan(bookworm, version="535.309.01")
    change = dp.changes(result, converged_state(), given, family_of(DEBIAN))
    assert change["changing"] and change["previous_version"] == "535.261.03"
    assert change["stale"] == result["dkms"]["locked"]
    assert [s for s in change["install"] if "=" in s] == [n + "=535.309.01-*" for n in result["dkms"]["locked"]]


def test_gpu_users_block_a_version_change(bookworm):
    result, given = lab_plan(bookworm, version="535.309.01")
    state = converged_state()
    state["processes"] = [
        {"pid": 4242, "comm": "python3", "unit": "session-3.scope", "devices": ["/dev/nvidia0", "/dev/nvidiactl"]},
        {"pid": 77, "comm": "nv-hostengine", "unit": "nvidia-dcgm.service", "devices": ["/dev/nvidiactl"]},
    ]
    state["services"] = {"nvidia-dcgm": {"active": "active", "enabled": "enabled"}, "nvidia-persistenced": {"active": "inactive"}}
    change = dp.changes(result, state, given, family_of(DEBIAN))
    assert len(change["problems"]) == 1
    problem = change["problems"][0]
    assert "refusing to change the driver from 535.261.03 to 535.309.01" in problem and "driver_force" in problem
    assert "pid 4242 python3 (session-3.scope) holds /dev/nvidia0, /dev/nvidiactl" in problem
    assert "nv-hostengine" not in problem  # a GPU service: stopped and started, not a blocker
    assert change["services_to_cycle"] == ["nvidia-dcgm"]
    forced = dp.changes(result, state, dict(given, force=True), family_of(DEBIAN))
    assert forced["problems"] == [] and forced["services_to_cycle"] == ["nvidia-dcgm"]


def test_gpu_users_do_not_block_a_converged_node(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    state = converged_state()
    state["processes"] = [{"pid": 4242, "comm": "python3", "unit": None, "devices": ["/dev/nvidia0"]}]
    change = dp.changes(result, state, given, family_of(DEBIAN))
    assert change["problems"] == [] and change["services_to_cycle"] == []


def test_driver_from_elsewhere_counts_as_a_change(bookworm):
    # A driver whose packages this source does not name (a runfile, another repository).
    result, given = lab_plan(bookworm)
    state = {"packages": {}, "available": {}, "nvml_library": {"version": "550.54.15"}, "loaded": None,
             "processes": [{"pid": 9, "comm": "train", "unit": None, "devices": ["/dev/nvidia0"]}]}
    change = dp.changes(result, state, given, family_of(DEBIAN))
    assert change["changing"] and "from 550.54.15 to branch 535" in change["problems"][0]


def test_unresolved_packaged_kernel_stops(bookworm):
    # vars/main.yml leaves "packaged" in place when the node could not resolve it.
    result = plan(bookworm, DEBIAN, kernel_release="packaged")
    assert result["problems"] == [
        "driver_kernel_release packaged: linux-headers-amd64 names no kernel headers package in the package cache"
        " (refresh the cache, or set driver_kernel_release to a kernel release)"
    ]


def test_missing_headers_stop_with_the_fix(bookworm):
    result = plan(bookworm, DEBIAN)  # the VM's own kernel: Debian has no headers for it
    state = {"packages": {}, "available": {"linux-headers-6.18.44-fc-v657": False}, "headers": {}}
    change = dp.changes(result, state, inputs(), family_of(DEBIAN))
    assert "no build headers for kernel 6.18.44-fc-v657" in change["problems"][0]
    assert "set driver_kernel_release" in change["problems"][0]


def test_ubuntu_precompiled_where_canonical_has_it(hgx):
    result = plan(hgx, UBUNTU, branch="580")
    module = "linux-modules-nvidia-580-server-open-6.8.0-87-generic"
    assert result["precompiled"]["module_package"] == module
    assert module in dp.query(result)["available"]
    change = dp.changes(result, {"available": {module: True}}, inputs(branch="580"), family_of(UBUNTU))
    assert change["build"] == "precompiled" and change["headers"] == []
    assert change["install"][0] == "nvidia-headless-no-dkms-580-server-open" and module in change["install"]
    dkms = dp.changes(result, {"available": {module: False}}, inputs(branch="580"), family_of(UBUNTU))
    assert dkms["build"] == "dkms" and dkms["install"][0] == "nvidia-headless-580-server-open"
    assert "building with DKMS" in dkms["notes"][0]


def test_rhel_cuda_repo_uses_module_streams_and_name_version(rocky_sb):
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", branch="550", version="550.163.01")
    assert result["problems"] == []
    assert result["module_stream"] == "nvidia-driver:550-dkms"
    assert result["repository"]["url"] == "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/"
    assert result["repository"]["key_url"].endswith("/rhel9/x86_64/D42D0685.pub")
    change = dp.changes(result, {"available": {}, "mok": {"enrolled": True}, "files": {}}, inputs(branch="550", version="550.163.01"), family_of(RHEL))
    assert change["install"][:2] == ["kmod-nvidia-latest-dkms-550.163.01", "nvidia-driver-cuda-550.163.01"]
    assert result["pin"] is None  # dnf pins through the stream and versionlock


def test_rhel_without_epel_stops_before_any_change(rocky_sb):
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", branch="550")
    assert "dkms" in dp.query(result)["available"]
    state = {"available": {"dkms": False}, "mok": {"enrolled": True}, "files": {}}
    problems = dp.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"]
    assert problems == [
        "dkms is not installable from the enabled repositories: enable EPEL (dnf install epel-release, and on RHEL"
        " the CodeReady Builder repository) or a mirror that carries it"
    ]
    state["available"]["dkms"] = True
    assert dp.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"] == []


# Secure Boot: signed with an enrolled key, or stop with the steps.


def test_secure_boot_without_an_enrolled_key_stops_with_steps(rocky_sb):
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", branch="550")
    assert dp.query(result)["mok_certificate"] == "/var/lib/dkms/mok.pub"
    state = {"available": {}, "files": {"/var/lib/dkms/mok.pub": True, "/var/lib/dkms/mok.key": True}, "mok": {"enrolled": False}}
    problem = dp.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"][0]
    assert "mokutil --import /var/lib/dkms/mok.pub" in problem and "driver_secure_boot_mok_key" in problem
    state["mok"]["enrolled"] = True
    assert dp.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"] == []


def test_secure_boot_with_the_users_key(rocky_sb):
    given = dict(branch="550", secure_boot_mok_key="/root/mok/MOK.priv", secure_boot_mok_cert="/root/mok/MOK.der")
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", **given)
    assert dp.query(result)["files"][:2] == ["/root/mok/MOK.priv", "/root/mok/MOK.der"]
    missing = dp.changes(result, {"available": {}, "files": {}, "mok": {"enrolled": None}}, inputs(**given), family_of(RHEL))
    assert missing["problems"] == ["driver_secure_boot_mok_key/cert: /root/mok/MOK.priv, /root/mok/MOK.der not found on the node"]
    ok = dp.changes(result, {"available": {}, "files": {"/root/mok/MOK.priv": True, "/root/mok/MOK.der": True}, "mok": {"enrolled": True}},
                    inputs(**given), family_of(RHEL))
    assert ok["problems"] == [] and ok["sign"] is True


def test_secure_boot_on_ubuntu_2204_with_own_key_needs_precompiled(tmp_path):
    facts = gather(hosts.workstation_nouveau, tmp_path)
    facts["os"] = {"id": "ubuntu", "family": "Debian", "major_version": "22.04", "version": "22.04", "name": "Ubuntu 22.04"}
    given = dict(branch="550", secure_boot_mok_key="/root/k", secure_boot_mok_cert="/root/c", precompiled_modules="never")
    result = plan(facts, UBUNTU, **given)
    assert "dkms (before 3.0)" in dp.changes(result, {"available": {}}, inputs(**given), family_of(UBUNTU))["problems"][0]


def test_secure_boot_off_needs_nothing(bookworm):
    result, given = lab_plan(bookworm)
    assert dp.query(result)["mok_certificate"] is None
    assert dp.changes(result, converged_state(), given, family_of(DEBIAN))["sign"] is False


# After installing: verification, holds and the reboot decision.

MODULE = {"path": "/lib/modules/6.1.0-50-amd64/updates/dkms/nvidia-current.ko", "version": "535.261.03",
          "vermagic": "6.1.0-50-amd64 SMP preempt mod_unload modversions", "built_for": "6.1.0-50-amd64"}
DKMS = {"module": "nvidia-current", "version": "535.261.03", "kernel": "6.1.0-50-amd64", "arch": "x86_64", "state": "installed",
        "detail": "nvidia-current/535.261.03, 6.1.0-50-amd64, x86_64: installed"}


def verified_state(**changes):
    state = converged_state(held=False)
    state.update({"modules": {"6.1.0-50-amd64": [dict(MODULE)]}, "dkms": [dict(DKMS)], "commands": {"nvidia-smi": "/usr/bin/nvidia-smi"}})
    state.update(changes)
    return state


def judge(facts, state, **overrides):
    result, given = lab_plan(facts, **overrides)
    change = dp.changes(result, {"packages": {}, "available": {}}, given, family_of(DEBIAN))
    return dp.outcome(result, change, state, facts=facts, inputs=given, changed=True)


def test_lab_node_verifies_and_holds_the_driver_version(bookworm):
    result = judge(bookworm, verified_state(), version="535.261.03")
    assert result["problems"] == [] and result["rebuild"] is False
    assert result["version"] == "535.261.03"
    assert "dkms: nvidia-current/535.261.03, 6.1.0-50-amd64, x86_64: installed" in result["checks"]
    assert any(c.startswith("modinfo ") and "vermagic 6.1.0-50-amd64" in c for c in result["checks"])
    # Everything at the driver's version plus persistenced; nvidia-modprobe (own version) is not held.
    assert result["to_hold"] == sorted(["firmware-nvidia-gsp", "libnvidia-cfg1", "libnvidia-ml1", "nvidia-alternative", "nvidia-kernel-dkms",
                                        "nvidia-kernel-support", "nvidia-persistenced", "nvidia-smi"])
    assert result["reboot"] == {"policy": "if_needed", "required": False, "reboot": False, "suppressed": None,
                                "reason": "no NVIDIA GPU on the PCI bus: there is no module to load"}


def test_missing_dkms_build_asks_for_a_rebuild(bookworm):
    result = judge(bookworm, verified_state(dkms=[dict(DKMS, kernel="6.1.0-49-amd64")], modules={}))
    assert result["rebuild"] is True
    assert any("dkms has no installed nvidia module 535.261.03 for kernel 6.1.0-50-amd64" in p for p in result["problems"])
    assert any("no NVIDIA kernel module file" in p for p in result["problems"])


def test_vermagic_for_another_kernel_fails(bookworm):
    wrong = dict(MODULE, vermagic="6.18.44-fc-v657 SMP", built_for="6.18.44-fc-v657")
    result = judge(bookworm, verified_state(modules={"6.1.0-50-amd64": [wrong]}))
    assert any("vermagic '6.18.44-fc-v657 SMP', not kernel 6.1.0-50-amd64" in p for p in result["problems"])


def test_split_packages_fail(bookworm):
    state = verified_state()
    state["packages"]["libnvidia-ml1"] = "535.309.01-0+deb12u1"
    result = judge(bookworm, state)
    assert any("libnvidia-ml1 is at 535.309.01-0+deb12u1, not 535.261.03" in p for p in result["problems"])


def gpu_node(facts, loaded=None, container="none", nouveau=False):
    facts = with_gpus(facts, HOPPER)
    facts["kernel"] = {"running": "6.1.0-50-amd64", "target": "6.1.0-50-amd64"}
    facts["virtualization"] = {"container": container, "vm": "none"}
    facts["modules"] = {"nouveau": nouveau}
    state = verified_state(loaded=loaded, nvidia_smi={"rc": 9, "gpus": [], "error": "NVIDIA-SMI has failed"})
    return facts, state


@pytest.mark.parametrize(
    "policy, loaded, container, reboot, required, suppressed",
    [
        ("if_needed", "535.261.03", "none", False, False, None),
        ("if_needed", "535.216.01", "none", True, True, None),
        ("if_needed", None, "none", True, True, None),
        ("if_needed", "535.216.01", "docker", False, True, "container"),
        ("never", "535.216.01", "none", False, True, "reboot the node yourself"),
        ("always", "535.261.03", "none", True, False, None),
        ("always", "535.261.03", "podman", False, False, "container"),
    ],
)
def test_reboot_policy(bookworm, policy, loaded, container, reboot, required, suppressed):  # noqa: PLR0917 (pytest parameters)
    banner = {"version": loaded, "kernel_module_type": "proprietary"} if loaded else None
    facts, state = gpu_node(bookworm, loaded=banner, container=container)
    decision = judge(facts, state, reboot=policy)["reboot"]
    assert (decision["reboot"], decision["required"]) == (reboot, required)
    assert (suppressed is None and decision["suppressed"] is None) or suppressed in decision["suppressed"]


def test_nouveau_and_other_kernel_need_a_reboot(bookworm):
    facts, state = gpu_node(bookworm, loaded=None, nouveau=True)
    facts["kernel"]["running"] = "6.1.0-49-amd64"
    result = judge(facts, state)
    assert "nouveau is loaded" in result["reboot"]["reason"]
    assert "built for kernel 6.1.0-50-amd64 and the node runs 6.1.0-49-amd64" in result["reboot"]["reason"]
    assert result["reload"] is False  # not the running kernel, and nouveau holds the GPU


def test_reload_in_place_before_rebooting(bookworm):
    facts, state = gpu_node(bookworm, loaded={"version": "535.216.01", "kernel_module_type": "proprietary"})
    assert judge(facts, state)["reload"] is True
    facts, state = gpu_node(bookworm, loaded={"version": "535.216.01", "kernel_module_type": "proprietary"}, container="docker")
    assert judge(facts, state)["reload"] is False


def test_loaded_right_driver_is_checked_with_nvidia_smi(bookworm):
    facts, state = gpu_node(bookworm, loaded={"version": "535.261.03", "kernel_module_type": "proprietary"})
    state["nvidia_smi"] = {"rc": 0, "gpus": [{"index": "0", "name": "NVIDIA H100 80GB HBM3", "driver_version": "535.261.03"}], "error": None}
    result = judge(facts, state)
    assert result["in_place"] and result["problems"] == []
    assert "nvidia-smi sees 1 GPU(s) on driver 535.261.03" in result["checks"]


# preinstalled: read and judge, never change.

H100_SMI = {"rc": 0, "gpus": [{"index": "0", "name": "NVIDIA H100 80GB HBM3", "driver_version": "580.159.04"}], "error": None}


def preinstalled(tmp_path, state, **overrides):
    facts = gather(hosts.gpu_machine_h100, tmp_path)
    given = inputs(source="preinstalled", nvml_install="none", **overrides)
    data, family = os_data(*UBUNTU)
    result = dp.plan(given, data, family, facts)
    assert result["problems"] == []
    change = dp.changes(result, state, given, family)
    assert change["install"] == [] and change["install_needed"] is False
    return dp.outcome(result, change, state, facts=facts, inputs=given, changed=False), dp.query(result)


def gpu_machine_state(**changes):
    state = {"packages": {}, "loaded": {"version": "580.159.04", "kernel_module_type": "open"}, "modules": {},
             "nvml_library": {"path": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "version": "580.159.04"}, "nvidia_smi": dict(H100_SMI)}
    state.update(changes)
    return state


def test_preinstalled_recognises_the_gpu_machine(tmp_path):
    result, query = preinstalled(tmp_path, gpu_machine_state(), branch="580", kernel_module_type="open")
    assert query["nvidia_smi"] is True and len(query["kernels"]) == 1  # the running kernel
    assert result["problems"] == [] and result["version"] == "580.159.04"
    assert result["checks"] == ["running driver 580.159.04 (open kernel module)", "NVML library 580.159.04 at /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
                                "nvidia-smi sees 1 GPU(s): NVIDIA H100 80GB HBM3"]
    assert result["reboot"]["reboot"] is False and result["to_hold"] == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"version": "580.95.05"}, "not driver_version 580.95.05"),
        ({"branch": "570"}, "not in driver_branch 570"),
        ({"kernel_module_type": "proprietary"}, "uses the open kernel module, not proprietary"),
    ],
)
def test_preinstalled_mismatches(tmp_path, overrides, message):
    result, _query = preinstalled(tmp_path, gpu_machine_state(), **overrides)
    assert any(message in p for p in result["problems"])


def test_preinstalled_without_a_driver(tmp_path):
    result, _query = preinstalled(tmp_path, gpu_machine_state(loaded=None, nvml_library=None, nvidia_smi={"rc": 127, "gpus": [], "error": "x"}))
    assert any("no NVIDIA driver is loaded on a node with 1 GPU(s)" in p for p in result["problems"])
    assert any("no NVIDIA driver is loaded or installed" in p for p in result["problems"])
