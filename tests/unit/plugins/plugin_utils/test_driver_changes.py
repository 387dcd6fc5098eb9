"""What changes on a node: the driver_state query, the pinned install set, GPU
users, missing headers, precompiled modules, EPEL and Secure Boot readiness."""

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_changes as dc

from ... import hosts
from ...driver_data import gather, inputs, with_gpus
from .driver_cases import AMPERE, DEBIAN, RHEL, UBUNTU, converged_state, family_of, lab_plan, plan


def test_fabricmanager_is_version_locked_with_the_driver(hgx):
    result = plan(hgx, UBUNTU, branch="570", version="570.195.03")
    change = dc.changes(result, {"available": {}}, inputs(branch="570", version="570.195.03"), family_of(UBUNTU))
    assert "nvidia-fabricmanager-570=570.195.03-*" in change["install"]


# What changes on a node.


def test_converged_node_changes_nothing(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    change = dc.changes(result, converged_state(), given, family_of(DEBIAN))
    assert change["problems"] == [] and change["install_needed"] is False and change["changing"] is False


def test_fresh_node_installs_the_pinned_set(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    change = dc.changes(result, {"packages": {}, "available": {"linux-headers-6.1.0-50-amd64": True}}, given, family_of(DEBIAN))
    assert change["install_needed"] and not change["changing"]
    assert change["install"][:2] == ["nvidia-kernel-dkms=535.261.03-*", "nvidia-kernel-support=535.261.03-*"]
    assert change["install"][-4:] == ["nvidia-persistenced", "linux-headers-6.1.0-50-amd64", "python3-venv", "python3-packaging"]


def test_new_pin_changes_exactly_the_driver_packages(bookworm):
    result, given = lab_plan(bookworm, version="535.309.01")
    change = dc.changes(result, converged_state(), given, family_of(DEBIAN))
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
    change = dc.changes(result, state, given, family_of(DEBIAN))
    assert len(change["problems"]) == 1
    problem = change["problems"][0]
    assert "refusing to change the driver from 535.261.03 to 535.309.01" in problem and "driver_force" in problem
    assert "pid 4242 python3 (session-3.scope) holds /dev/nvidia0, /dev/nvidiactl" in problem
    assert "nv-hostengine" not in problem  # a GPU service: stopped and started, not a blocker
    assert change["services_to_cycle"] == ["nvidia-dcgm"]
    forced = dc.changes(result, state, dict(given, force=True), family_of(DEBIAN))
    assert forced["problems"] == [] and forced["services_to_cycle"] == ["nvidia-dcgm"]


def test_gpu_users_do_not_block_a_converged_node(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    state = converged_state()
    state["processes"] = [{"pid": 4242, "comm": "python3", "unit": None, "devices": ["/dev/nvidia0"]}]
    change = dc.changes(result, state, given, family_of(DEBIAN))
    assert change["problems"] == [] and change["services_to_cycle"] == []


def test_driver_from_elsewhere_counts_as_a_change(bookworm):
    # A driver whose packages this source does not name (a runfile, another repository).
    result, given = lab_plan(bookworm)
    state = {"packages": {}, "available": {}, "nvml_library": {"version": "550.54.15"}, "loaded": None,
             "processes": [{"pid": 9, "comm": "train", "unit": None, "devices": ["/dev/nvidia0"]}]}
    change = dc.changes(result, state, given, family_of(DEBIAN))
    assert change["changing"] and "from 550.54.15 to branch 535" in change["problems"][0]


def test_missing_headers_stop_with_the_fix(bookworm):
    result = plan(bookworm, DEBIAN)  # the VM's own kernel: Debian has no headers for it
    state = {"packages": {}, "available": {"linux-headers-6.18.44-fc-v657": False}, "headers": {}}
    change = dc.changes(result, state, inputs(), family_of(DEBIAN))
    assert "no build headers for kernel 6.18.44-fc-v657" in change["problems"][0]
    assert "set driver_kernel_release" in change["problems"][0]


def test_ubuntu_precompiled_where_canonical_has_it(hgx):
    result = plan(hgx, UBUNTU, branch="580")
    module = "linux-modules-nvidia-580-server-open-6.8.0-87-generic"
    assert result["precompiled"]["module_package"] == module
    assert module in dc.query(result)["available"]
    change = dc.changes(result, {"available": {module: True}}, inputs(branch="580"), family_of(UBUNTU))
    assert change["build"] == "precompiled" and change["headers"] == []
    assert change["install"][0] == "nvidia-headless-no-dkms-580-server-open" and module in change["install"]
    dkms = dc.changes(result, {"available": {module: False}}, inputs(branch="580"), family_of(UBUNTU))
    assert dkms["build"] == "dkms" and dkms["install"][0] == "nvidia-headless-580-server-open"
    assert "building with DKMS" in dkms["notes"][0]


def test_rhel_cuda_repo_uses_module_streams_and_name_version(rocky_sb):
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", branch="550", version="550.163.01")
    assert result["problems"] == []
    assert result["module_stream"] == "nvidia-driver:550-dkms"
    assert result["repository"]["url"] == "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/"
    assert result["repository"]["key_url"].endswith("/rhel9/x86_64/D42D0685.pub")
    change = dc.changes(result, {"available": {}, "mok": {"enrolled": True}, "files": {}}, inputs(branch="550", version="550.163.01"), family_of(RHEL))
    assert change["install"][:2] == ["kmod-nvidia-latest-dkms-550.163.01", "nvidia-driver-cuda-550.163.01"]
    assert result["pin"] is None  # dnf pins through the stream and versionlock


def test_rhel_without_epel_stops_before_any_change(rocky_sb):
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", branch="550")
    assert "dkms" in dc.query(result)["available"]
    state = {"available": {"dkms": False}, "mok": {"enrolled": True}, "files": {}}
    problems = dc.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"]
    assert problems == [
        "dkms is not installable from the enabled repositories: enable EPEL (dnf install epel-release, and on RHEL"
        " the CodeReady Builder repository) or a mirror that carries it"
    ]
    state["available"]["dkms"] = True
    assert dc.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"] == []


# Secure Boot: signed with an enrolled key, or stop with the steps.


def test_secure_boot_without_an_enrolled_key_stops_with_steps(rocky_sb):
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", branch="550")
    assert dc.query(result)["mok_certificate"] == "/var/lib/dkms/mok.pub"
    state = {"available": {}, "files": {"/var/lib/dkms/mok.pub": True, "/var/lib/dkms/mok.key": True}, "mok": {"enrolled": False}}
    problem = dc.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"][0]
    assert "mokutil --import /var/lib/dkms/mok.pub" in problem and "driver_secure_boot_mok_key" in problem
    state["mok"]["enrolled"] = True
    assert dc.changes(result, state, inputs(branch="550"), family_of(RHEL))["problems"] == []


def test_secure_boot_with_the_users_key(rocky_sb):
    given = dict(branch="550", secure_boot_mok_key="/root/mok/MOK.priv", secure_boot_mok_cert="/root/mok/MOK.der")
    result = plan(with_gpus(rocky_sb, AMPERE), RHEL, source="cuda_repo", **given)
    assert dc.query(result)["files"][:2] == ["/root/mok/MOK.priv", "/root/mok/MOK.der"]
    missing = dc.changes(result, {"available": {}, "files": {}, "mok": {"enrolled": None}}, inputs(**given), family_of(RHEL))
    assert missing["problems"] == ["driver_secure_boot_mok_key/cert: /root/mok/MOK.priv, /root/mok/MOK.der not found on the node"]
    ok = dc.changes(result, {"available": {}, "files": {"/root/mok/MOK.priv": True, "/root/mok/MOK.der": True}, "mok": {"enrolled": True}},
                    inputs(**given), family_of(RHEL))
    assert ok["problems"] == [] and ok["sign"] is True


def test_secure_boot_on_ubuntu_2204_with_own_key_needs_precompiled(tmp_path):
    facts = gather(hosts.workstation_nouveau, tmp_path)
    facts["os"] = {"id": "ubuntu", "family": "Debian", "major_version": "22.04", "version": "22.04", "name": "Ubuntu 22.04"}
    given = dict(branch="550", secure_boot_mok_key="/root/k", secure_boot_mok_cert="/root/c", precompiled_modules="never")
    result = plan(facts, UBUNTU, **given)
    assert "dkms (before 3.0)" in dc.changes(result, {"available": {}}, inputs(**given), family_of(UBUNTU))["problems"][0]


def test_secure_boot_off_needs_nothing(bookworm):
    result, given = lab_plan(bookworm)
    assert dc.query(result)["mok_certificate"] is None
    assert dc.changes(result, converged_state(), given, family_of(DEBIAN))["sign"] is False


# The NVML venv: nvidia-ml-py and cuda-bindings, pip only where one is missing or off its pin.


def _venv(bookworm, probe=None, **overrides):
    result, given = lab_plan(bookworm, **overrides)
    state = converged_state()
    if probe is not None:
        state["nvml_python"] = probe
    return dc.changes(result, state, given, family_of(DEBIAN))["venv"]


def test_converged_venv_runs_no_pip(bookworm):
    venv = _venv(bookworm)
    assert venv == {"install": False, "requirements": ["nvidia-ml-py==13.615.71", "cuda-bindings==12.*"],
                    "cuda_bindings": "cuda-bindings==12.*", "cuda_bindings_skipped": None}


def test_fresh_node_installs_both_into_the_venv(bookworm):
    fresh = {"path": "/opt/gpunode/venv/bin/python3", "exists": False, "pynvml": False, "version": None, "cuda_bindings": None, "python": "3.11.2"}
    venv = _venv(bookworm, fresh)
    assert venv["install"] and venv["requirements"] == ["nvidia-ml-py==13.615.71", "cuda-bindings==12.*"]


def test_missing_or_off_pin_cuda_bindings_installs(bookworm):
    probe = dict(converged_state()["nvml_python"], cuda_bindings=None)
    assert _venv(bookworm, probe)["install"] is True  # an older role's venv: nvidia-ml-py alone
    thirteen = dict(converged_state()["nvml_python"], cuda_bindings="13.0.1")
    assert _venv(bookworm, thirteen)["install"] is True  # a CUDA 13 binding on a 535 driver
    assert _venv(bookworm, thirteen, branch="580", extra_branches=["580"])["install"] is False
    pinned = _venv(bookworm, cuda_bindings_package="cuda-bindings==12.9.4")
    assert pinned["install"] is False and pinned["requirements"][-1] == "cuda-bindings==12.9.4"
    assert _venv(bookworm, cuda_bindings_package="cuda-bindings==12.9.10")["install"] is True
    # Unpinned: pip decides on each run, as for nvidia-ml-py.
    assert _venv(bookworm, cuda_bindings_package="cuda-bindings>=12")["install"] is True
    assert _venv(bookworm, nvml_package="nvidia-ml-py==13.580.82")["install"] is True


def test_none_installs_no_binding(bookworm):
    venv = _venv(bookworm, cuda_bindings_package="none")
    assert venv == {"install": False, "requirements": ["nvidia-ml-py==13.615.71"], "cuda_bindings": None,
                    "cuda_bindings_skipped": "driver_cuda_bindings_package: none"}


def test_old_python_skips_the_binding_and_says_why(bookworm):
    # EL 8's /usr/bin/python3 is 3.6: no cuda-bindings wheel; nvidia-ml-py still goes in.
    fresh = {"path": "/opt/gpunode/venv/bin/python3", "exists": False, "pynvml": False, "version": None, "cuda_bindings": None, "python": "3.6.8"}
    venv = _venv(bookworm, fresh)
    assert venv["install"] is True and venv["requirements"] == ["nvidia-ml-py==13.615.71"] and venv["cuda_bindings"] is None
    assert venv["cuda_bindings_skipped"] == "Python 3.6.8 (/usr/bin/python3) is too old for cuda-bindings (wheels from 3.9)"
    converged = dict(fresh, exists=True, pynvml=True, version="13.615.71", python="3.8.10")
    venv = _venv(bookworm, converged)
    assert venv["install"] is False and "Python 3.8.10 (/opt/gpunode/venv/bin/python3)" in venv["cuda_bindings_skipped"]
    assert _venv(bookworm, dict(converged, python="3.9.0"))["install"] is True


def test_no_venv_no_binding(bookworm):
    venv = _venv(bookworm, nvml_install="distro")
    assert venv["install"] is False and venv["requirements"] == [] and "driver_nvml_install distro" in venv["cuda_bindings_skipped"]


def test_the_query_asks_for_the_venv_base(bookworm):
    result, _given = lab_plan(bookworm)
    query = dc.query(result)
    assert query["nvml_python"] == "/opt/gpunode/venv/bin/python3" and query["nvml_python_base"] == "/usr/bin/python3"
