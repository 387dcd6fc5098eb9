"""The validate role's verdicts: gating, each stage from registered results, node capacity, report and table.

The registered results are in the shape Ansible registers them; the Kubernetes
node objects are what `kubectl get node -o json` returns (no API server can be
reached here: these are written from the Node API schema and the device
plugin's documented resource names).
"""

import pytest
from ansible_collections.gpunode.nvidia.plugins.filter import validate as v

PREFLIGHT_GPU = {"gpus": {"count": 8}, "nvswitches": {"count": 4}}
PREFLIGHT_NO_GPU = {"gpus": {"count": 0}, "nvswitches": {"count": 0}}


def stage(name, status):
    return {"stage": name, "status": status, "reason": "", "details": {}}


# ------------------------------------------------------------------ gating


def test_gate_lets_the_first_stage_run():
    assert v.validate_gate({}, "driver") == {}


def test_gate_blocks_after_a_failure_and_after_a_block():
    assert v.validate_gate({"driver": stage("driver", "fail")}, "toolkit")["reason"] == "blocked: the driver stage did not pass"
    stages = {"driver": stage("driver", "fail"), "toolkit": stage("toolkit", "blocked")}
    blocked = v.validate_gate(stages, "container")
    assert blocked["status"] == "blocked" and blocked["reason"] == "blocked: the driver stage did not pass"


def test_gate_runs_after_pass_and_after_a_user_skip():
    stages = {"driver": stage("driver", "pass"), "toolkit": stage("toolkit", "skip")}
    assert v.validate_gate(stages, "container") == {}


def test_user_skip_wins_and_states_the_reason():
    skipped = v.validate_gate({"driver": stage("driver", "fail")}, "plugin", {"plugin": "no Kubernetes on these nodes"})
    assert skipped == {"stage": "plugin", "status": "skip", "reason": "skipped by validate_skip: no Kubernetes on these nodes", "details": {}}
    assert v.validate_gate({}, "toolkit", {"toolkit": ""})["reason"] == "skipped by validate_skip: no reason given"


def test_continue_after_failure_runs_everything():
    assert v.validate_gate({"driver": stage("driver", "fail")}, "toolkit", {}, True) == {}


def test_gate_refuses_an_unknown_stage():
    with pytest.raises(ValueError, match="unknown validate stage 'gpu_burn'"):
        v.validate_gate({}, "gpu_burn")


# ------------------------------------------------------------------ driver

NVML_OK = {
    "changed": False, "passed": True, "summary": "all 14 checks passed", "checks": [{"check": "nvml", "status": "pass"}],
    "nvml": {"driver_version": "580.159.04", "cuda_driver_version": "13.0", "gpu_count": 2,
             "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-a", "pci_bus_id": "00000000:18:00.0", "power_w": 70.1},
                      {"index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-b", "pci_bus_id": "00000000:2A:00.0"}]},
}


def test_driver_pass():
    result = v.validate_driver_stage(NVML_OK, PREFLIGHT_GPU)
    assert result["status"] == "pass"
    assert result["reason"] == "driver 580.159.04, CUDA 13.0, 2 GPU(s) NVIDIA H100 80GB HBM3; all 14 checks passed"
    assert result["details"]["gpus"][1] == {
        "index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-b", "pci_bus_id": "00000000:2A:00.0", "mig_enabled": False}
    assert result["details"]["gpu_count"] == 2 and result["details"]["gpus_on_pci"] == 8


def test_driver_fail_keeps_every_check():
    failed = dict(NVML_OK, failed=True, passed=False, summary="1 of 14 checks failed: gpu1 ecc: ECC is off, expected on",
                  checks=[{"check": "ecc", "gpu": 1, "status": "fail"}])
    result = v.validate_driver_stage(failed, PREFLIGHT_GPU)
    assert result["status"] == "fail" and result["reason"].startswith("1 of 14 checks failed: gpu1 ecc")
    assert result["details"]["checks"] == [{"check": "ecc", "gpu": 1, "status": "fail"}]


def test_driver_fail_on_a_gpu_less_node_says_so_once():
    missing = {"failed": True, "nvml_error": "BINDING_MISSING", "summary": "1 of 1 checks failed: nvml: Failed to import pynvml", "nvml": {}}
    result = v.validate_driver_stage(missing, PREFLIGHT_NO_GPU)
    assert result["reason"] == "no NVIDIA GPU on the PCI bus; 1 of 1 checks failed: nvml: Failed to import pynvml"
    not_loaded = {"failed": True, "summary": "1 of 1 checks failed: nvml: NVIDIA driver not loaded. no NVIDIA GPU on the PCI bus: nothing"}
    assert v.validate_driver_stage(not_loaded, PREFLIGHT_NO_GPU)["reason"].count("no NVIDIA GPU on the PCI bus") == 1


def test_driver_module_crash_is_a_failure_not_a_traceback():
    crashed = {"failed": True, "module_stderr": "Traceback (most recent call last):\n ...\nKeyError: 'x'\n", "msg": "MODULE FAILURE"}
    assert v.validate_driver_stage(crashed, PREFLIGHT_GPU)["reason"] == "MODULE FAILURE"


# ----------------------------------------------------------------- toolkit


def version_probe(path, stdout, rc=0, msg=""):
    return {"item": path, "rc": rc, "stdout": stdout, "msg": msg}


PROBES_OK = {"results": [
    version_probe("/usr/bin/nvidia-container-runtime", "NVIDIA Container Runtime version 1.17.8\ncommit: f202b80\nspec: 1.2.1\n\nrunc version 1.1.12"),
    version_probe("/usr/bin/nvidia-ctk", "NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80"),
]}
# containerd_runtime's results in check mode with diff, as registered under changed_when: false.
CONFIGURED = {
    "changed": False, "config_path": "/etc/containerd/config.toml", "dropin_path": "/etc/containerd/conf.d/99-nvidia.toml",
    "config_version": 2, "containerd_version": "1.7.24", "imports": ["/etc/containerd/conf.d/99-nvidia.toml"], "binary_exists": True,
    "effective": {"runtime": {"runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"}}},
    "invocation": {"module_args": {"name": "nvidia"}},
}
NOT_CONFIGURED = dict(
    CONFIGURED, effective=None, imports=[],
    diff=[{"before_header": "/etc/containerd/config.toml", "after_header": "/etc/containerd/config.toml", "before": "version = 2\n",
           "after": "version = 2\nimports = [\"/etc/containerd/conf.d/99-nvidia.toml\"]\n"},
          {"before_header": "/etc/containerd/conf.d/99-nvidia.toml (absent)", "after_header": "/etc/containerd/conf.d/99-nvidia.toml",
           "before": "", "after": "version = 2\n"}])


def test_toolkit_pass():
    result = v.validate_toolkit_stage(PROBES_OK, CONFIGURED)
    assert result["status"] == "pass"
    assert result["reason"] == ("nvidia-container-runtime 1.17.8, nvidia-ctk 1.17.8; the nvidia runtime is configured in containerd 1.7.24"
                                " (confirmed by its config dump)")
    assert result["details"]["binaries"] == {"/usr/bin/nvidia-container-runtime": "1.17.8", "/usr/bin/nvidia-ctk": "1.17.8"}
    assert result["details"]["containerd_runtime_configured"] is True
    assert result["details"]["effective_runtime"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"


TOOLKIT_NAMES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"]
TOOLKIT = {"packages": dict((n, "1.17.8-1") for n in TOOLKIT_NAMES),
           "binaries": {"/usr/bin/nvidia-ctk": True, "/usr/bin/nvidia-container-cli": True}}


def test_toolkit_packages_at_the_installed_version_pass():
    result = v.validate_toolkit_stage(PROBES_OK, CONFIGURED, None, TOOLKIT, "1.17.8-1")
    assert result["status"] == "pass"
    assert result["reason"].startswith("nvidia-container-runtime 1.17.8, nvidia-ctk 1.17.8 (4 packages at 1.17.8-1); ")
    assert result["details"]["toolkit"] == {"packages": TOOLKIT["packages"], "expected_version": "1.17.8-1"}
    # Without an expected version the four must still agree.
    assert v.validate_toolkit_stage(PROBES_OK, CONFIGURED, None, TOOLKIT, "")["status"] == "pass"


def test_toolkit_packages_split_missing_or_without_their_binaries_fail():
    split = dict(TOOLKIT, packages=dict(TOOLKIT["packages"], libnvidia_container1=None, **{"libnvidia-container1": "1.18.0-1"}))
    split["packages"].pop("libnvidia_container1")
    assert v.validate_toolkit_stage(PROBES_OK, CONFIGURED, None, split, "1.17.8-1")["reason"] == (
        "toolkit packages are not all at 1.17.8-1: libnvidia-container1 1.18.0-1")
    assert v.validate_toolkit_stage(PROBES_OK, CONFIGURED, None, split, "")["reason"] == (
        "toolkit packages are at different versions (libnvidia-container-tools 1.17.8-1, libnvidia-container1 1.18.0-1,"
        " nvidia-container-toolkit 1.17.8-1, nvidia-container-toolkit-base 1.17.8-1): they must move together")
    missing = dict(TOOLKIT, packages=dict(TOOLKIT["packages"], **{"nvidia-container-toolkit": None}))
    assert v.validate_toolkit_stage(PROBES_OK, CONFIGURED, None, missing, "")["reason"] == (
        "toolkit packages not installed: nvidia-container-toolkit (the container_toolkit role installs them)")
    gone = dict(TOOLKIT, binaries={"/usr/bin/nvidia-ctk": True, "/usr/bin/nvidia-container-cli": False})
    assert v.validate_toolkit_stage(PROBES_OK, CONFIGURED, None, gone, "1.17.8-1")["reason"] == (
        "binaries the toolkit packages provide are missing: /usr/bin/nvidia-container-cli")


# What ansible-core 2.19 registers for a command whose binary is absent, under failed_when: false.
MISSING_BINARY = {"failed": False, "failed_when_result": False, "msg": "Error executing command.", "rc": 2, "stderr": "", "stdout": ""}


def test_toolkit_runtime_missing_and_not_configured():
    probes = {"results": [dict(MISSING_BINARY, item="/usr/bin/nvidia-container-runtime"),
                          PROBES_OK["results"][1]]}
    result = v.validate_toolkit_stage(probes, NOT_CONFIGURED)
    assert result["status"] == "fail"
    assert result["reason"] == ("/usr/bin/nvidia-container-runtime is not installed (install the NVIDIA container toolkit: container_toolkit"
                                " role); the nvidia runtime is not configured in containerd as the containerd role sets it"
                                " (/etc/containerd/config.toml, /etc/containerd/conf.d/99-nvidia.toml): run the containerd role")
    assert result["details"]["containerd_runtime_configured"] is False


def test_toolkit_binary_that_fails():
    probes = {"results": [dict(version_probe("/usr/bin/nvidia-ctk", "", rc=1, msg="non-zero return code"), stderr="error while loading shared libraries")]}
    assert "does not work: error while loading shared libraries" in v.validate_toolkit_stage(probes, CONFIGURED)["reason"]


@pytest.mark.parametrize("failed", [True, False])  # False: as registered under failed_when: false
def test_toolkit_containerd_config_unreadable(failed):
    bad = {"failed": failed, "msg": "/etc/containerd/config.toml: malformed TOML: line 3", "config_path": "/etc/containerd/config.toml",
           "dropin_path": "/etc/containerd/conf.d/99-nvidia.toml"}
    result = v.validate_toolkit_stage(PROBES_OK, bad)
    assert result["status"] == "fail"
    assert "could not tell whether containerd has the nvidia runtime (containerd_runtime: /etc/containerd/config.toml: malformed" in result["reason"]
    assert result["details"]["containerd_runtime_configured"] is None


def test_toolkit_effective_config_wrong_is_a_failure():
    # The module's own check against `containerd config dump` failed (a config manager rewrote config.toml).
    bad = dict(CONFIGURED, msg="containerd's effective configuration is not right: runtime nvidia is not in containerd's effective configuration")
    result = v.validate_toolkit_stage(PROBES_OK, bad)
    assert result["status"] == "fail" and "runtime nvidia is not in containerd's effective configuration" in result["reason"]


def test_toolkit_module_that_did_not_run_cannot_pass():
    crashed = {"changed": False, "module_stderr": "Traceback ...\nImportError: x", "msg": "MODULE FAILURE"}
    assert v.validate_toolkit_stage(PROBES_OK, crashed)["status"] == "fail"
    assert v.validate_toolkit_stage(PROBES_OK, {"changed": False})["status"] == "fail"


# --------------------------------------------------------------- container

SKIPPED = {"skipped": True, "changed": False}
PROBE_HAS_IMAGE = {"rc": 0, "stdout": "docker.io/library/ubuntu:24.04"}
PROBE_NO_IMAGE = {"rc": 0, "stdout": ""}
SMI = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-4a1d6a0e-8a57-1f2c-6c1b-0a9e3c5d7f10)\n"
       "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-4a1d6a0e-8a57-1f2c-6c1b-0a9e3c5d7f11)\n")
IMAGE = "docker.io/library/ubuntu:24.04"


def container(*, probe=None, imported=None, pulled=None, run=None, expected=2, check_mode=False):
    steps = {"probe": probe or PROBE_HAS_IMAGE, "import": imported or SKIPPED, "pull": pulled or SKIPPED, "run": run or SKIPPED}
    return v.validate_container_stage(steps, IMAGE, expected, check_mode)


def test_container_pass():
    result = container(run={"rc": 0, "stdout": SMI})
    assert result["status"] == "pass"
    assert result["reason"] == "a container through the runtime sees 2 GPU(s): NVIDIA H100 80GB HBM3"
    assert result["details"]["gpus"][1]["uuid"] == "GPU-4a1d6a0e-8a57-1f2c-6c1b-0a9e3c5d7f11"


def test_container_sees_fewer_gpus_than_the_host():
    result = container(run={"rc": 0, "stdout": SMI}, expected=8)
    assert result["status"] == "fail" and result["reason"] == "the container sees 2 GPU(s), the host 8"


def test_container_lists_no_gpu():
    assert container(run={"rc": 0, "stdout": "No devices found.\n"})["reason"] == "nvidia-smi ran in the container but listed no GPU"


def test_containerd_not_answering():
    probe = {"rc": 1, "stderr": 'ctr: failed to dial "/run/containerd/containerd.sock": connection refused'}
    result = container(probe=probe)
    assert result["status"] == "fail" and "containerd does not answer" in result["reason"] and "connection refused" in result["reason"]
    assert container(probe=MISSING_BINARY)["reason"] == "ctr is not installed: install containerd (the containerd role)"


def test_image_pull_fails_on_an_air_gapped_node():
    pulled = {"rc": 1, "stderr": "ctr: failed to resolve reference: dial tcp: lookup on 127.0.0.53: no such host"}
    result = container(probe=PROBE_NO_IMAGE, pulled=pulled)
    assert result["status"] == "fail" and "validate_container_image_archive" in result["reason"]


def test_image_import_fails():
    imported = {"rc": 1, "stderr": "ctr: unrecognized image format"}
    assert "importing the image tarball failed: ctr: unrecognized image format" in container(probe=PROBE_NO_IMAGE, imported=imported)["reason"]


def test_check_mode_without_the_image_is_a_skip():
    result = container(probe=PROBE_NO_IMAGE, check_mode=True)
    assert result["status"] == "skip" and result["reason"] == "check mode: image %s is not on the node and was not pulled" % IMAGE


def test_runtime_error_is_reported_from_stderr():
    run = {"rc": 1, "stderr": "ctr: failed to create shim task: OCI runtime create failed: nvidia-container-cli: initialization error:"
                              " nvml error: driver not loaded: unknown"}
    result = container(run=run)
    assert result["status"] == "fail" and result["reason"].endswith("nvml error: driver not loaded: unknown")


def test_nvidia_smi_missing_in_the_container_names_the_cause():
    run = {"rc": 1, "stderr": 'ctr: ... exec: "nvidia-smi": executable file not found in $PATH: unknown'}
    assert "the runtime did not inject the driver's nvidia-smi" in container(run=run)["reason"]


# ------------------------------------------------------- plugin: capacity


def node(name, capacity, allocatable=None):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": dict({"cpu": "224", "memory": "2113389584Ki", "pods": "110"}, **capacity),
                       "allocatable": dict({"cpu": "223", "pods": "110"}, **(allocatable if allocatable is not None else capacity))}}


NODES = {"changed": False, "api_found": True, "resources": [
    node("gpu-01", {"nvidia.com/gpu": "8"}),
    node("gpu-02", {"nvidia.com/gpu": "0"}),
    node("cpu-01", {}),
    node("mig-01", {"nvidia.com/mig-1g.10gb": "14", "nvidia.com/mig-3g.40gb": "4"}),
    node("ts-01", {"nvidia.com/gpu": "32"}, {"nvidia.com/gpu": "30"}),
]}


def test_capacity_pass():
    result = v.validate_node_capacity(NODES, "gpu-01")
    assert result["status"] == "pass" and result["reason"] == "node capacity nvidia.com/gpu = 8 (allocatable 8)"
    assert result["details"] == {"node": "gpu-01", "resource": "nvidia.com/gpu", "minimum": 1, "capacity": "8", "allocatable": "8"}


def test_capacity_with_time_slicing_replicas_and_a_minimum():
    assert v.validate_node_capacity(NODES, "ts-01", "nvidia.com/gpu", 32)["reason"] == "node capacity nvidia.com/gpu = 32 (allocatable 30)"
    assert v.validate_node_capacity(NODES, "gpu-01", "nvidia.com/gpu", 16)["status"] == "fail"


@pytest.mark.parametrize("name", ["gpu-02", "cpu-01"])
def test_capacity_zero_or_absent_points_at_the_device_plugin(name):
    result = v.validate_node_capacity(NODES, name)
    assert result["status"] == "fail" and "nvidia.com/gpu = 0, need 1: is the device plugin running on this node" in result["reason"]


def test_capacity_mig_mixed_names_the_resources_it_has():
    result = v.validate_node_capacity(NODES, "mig-01")
    assert result["status"] == "fail"
    assert "nvidia.com/mig-1g.10gb, nvidia.com/mig-3g.40gb" in result["reason"] and "validate_plugin_resource" in result["reason"]
    assert v.validate_node_capacity(NODES, "mig-01", "nvidia.com/mig-1g.10gb", 7)["status"] == "pass"


def test_capacity_node_not_in_the_cluster():
    result = v.validate_node_capacity(NODES, "gpu-99.example")
    assert result["status"] == "fail" and "node gpu-99.example is not in the cluster: set validate_k8s_node_name" in result["reason"]


def test_capacity_api_unreachable_or_library_missing():
    # As registered under failed_when: false: "failed" is false, only the message tells.
    failed = {"failed": False, "failed_when_result": False, "msg": "Failed to import the required Python library (kubernetes) on vm's Python"}
    result = v.validate_node_capacity(failed, "gpu-01")
    assert result["status"] == "fail" and "could not read the Kubernetes nodes: Failed to import" in result["reason"]


def test_capacity_not_a_number():
    assert v.validate_node_capacity({"resources": [node("gpu-01", {"nvidia.com/gpu": "many"})]}, "gpu-01")["status"] == "fail"


# ---------------------------------------------------------- cuda stage

CUDA_PASS = {"changed": False, "failed": False, "passed": True, "cuda_driver_version": "13.0",
             "summary": "vector add passed on 1 of 1 GPU(s) on the host (CUDA 13.0); vector add passed on 1 of 1 GPU(s) in a container",
             "checks": [{"check": "host", "status": "pass"}, {"check": "container", "status": "pass"}],
             "host": {"devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "passed": True, "elapsed_s": 0.4, "kernel_s": 0.001}]},
             "container": {"devices": [{"index": 0, "passed": True}], "libcuda": "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04"}}
IMAGE_OK = {"changed": False, "failed": False, "image": "gpunode.local/gpunode/cuda-workload:0123456789abcdef", "command": ["python3"],
            "present": True}


def test_cuda_stage_passes_with_both_parts():
    result = v.validate_cuda_stage(CUDA_PASS, IMAGE_OK)
    assert result["status"] == "pass" and result["reason"] == CUDA_PASS["summary"]
    assert result["details"]["host"][0]["name"] == "NVIDIA H100 80GB HBM3" and result["details"]["image"] == IMAGE_OK["image"]
    assert result["details"]["container"]["libcuda"].endswith("libcuda.so.580.159.04")


def test_cuda_stage_fails_with_the_workload_s_summary():
    failed = dict(CUDA_PASS, passed=False, msg="no NVIDIA GPU on the PCI bus: there is nothing to run CUDA on", summary="no NVIDIA GPU on the PCI bus")
    result = v.validate_cuda_stage(failed, {"skipped": True})
    assert result["status"] == "fail" and result["reason"] == "no NVIDIA GPU on the PCI bus"


def test_cuda_stage_fails_when_the_image_could_not_be_made():
    image = {"changed": False, "failed": False, "msg": "ctr images import of the workload image failed: ctr: unrecognized image format"}
    host_only = dict(CUDA_PASS, container=None)
    result = v.validate_cuda_stage(host_only, image)
    assert result["status"] == "fail"
    assert result["reason"] == ("the CUDA workload image could not be made, so the runtime part did not run:"
                                " ctr images import of the workload image failed: ctr: unrecognized image format")


def test_cuda_stage_in_check_mode_with_no_image_yet():
    result = v.validate_cuda_stage(dict(CUDA_PASS, container=None), dict(IMAGE_OK, changed=True, present=False), True)
    assert result["status"] == "pass" and result["reason"].endswith("check mode: the workload image is not imported yet, so the runtime part did not run")


def test_cuda_stage_when_the_module_never_ran():
    result = v.validate_cuda_stage({"changed": False, "failed": False, "msg": "The task timed out after 300 seconds"}, {"skipped": True})
    assert result["status"] == "fail" and result["reason"] == "The task timed out after 300 seconds"


def test_cuda_stage_names_why_the_driver_role_installed_no_binding():
    failed = dict(CUDA_PASS, passed=False, host={"error": "BINDING_MISSING", "devices": []}, summary="Failed to import cuda-bindings")
    result = v.validate_cuda_stage(failed, {"skipped": True}, False, "Python 3.6.8 is older than 3.9: no cuda-bindings wheel for it")
    assert result["status"] == "fail" and result["reason"].startswith(
        "the driver role installed no cuda-bindings (Python 3.6.8 is older than 3.9: no cuda-bindings wheel for it): install cuda-bindings")


@pytest.mark.parametrize(("gpus", "fallback", "expected"), [
    ([{"mig_enabled": False}] * 8, 8, 8),
    ([{"mig_enabled": False}, {"mig_enabled": True}], 2, -1),
    (None, 4, 4),
    (None, None, -1),
])
def test_cuda_expected_gpus(gpus, fallback, expected):
    stages = {"driver": {"details": {"gpu_count": len(gpus), "gpus": gpus}}} if gpus is not None else {"driver": {"details": {"gpu_count": None}}}
    assert v.validate_cuda_expected_gpus(stages, fallback) == expected


def test_cuda_is_gated_like_the_others():
    stages = {"driver": stage("driver", "pass"), "toolkit": stage("toolkit", "pass"), "container": stage("container", "fail")}
    assert v.validate_gate(stages, "cuda")["reason"] == "blocked: the container stage did not pass"
    assert v.validate_gate(stages, "cuda", continue_after_failure=True) == {}
    assert v.validate_gate(dict(stages, cuda=stage("cuda", "fail")), "plugin")["status"] == "blocked"


# ---------------------------------------------------------- report, table


def all_stages(**statuses):
    return dict((name, dict(stage(name, status), reason="%s reason" % name)) for name, status in statuses.items())


def test_report_of_a_passing_gpu_node():
    stages = all_stages(plugin="skip", cuda="pass", container="pass", toolkit="pass", driver="pass")
    report = v.validate_report(stages, "gpu-01", PREFLIGHT_GPU)
    assert report["result"] == "pass" and report["fails_play"] is False
    assert [s["stage"] for s in report["stages"]] == ["driver", "toolkit", "container", "cuda", "plugin"]
    assert report["gpus_on_pci"] == 8 and report["nvswitches_on_pci"] == 4


def test_a_gpu_node_with_a_failing_stage_fails_the_play():
    report = v.validate_report(all_stages(driver="pass", toolkit="fail", container="blocked", plugin="blocked"), "gpu-01", PREFLIGHT_GPU)
    assert report["result"] == "fail" and report["fails_play"] is True


def test_a_gpu_less_node_fails_the_play_only_when_asked():
    stages = all_stages(driver="fail", toolkit="blocked", container="blocked", plugin="blocked")
    assert v.validate_report(stages, "lab-1", PREFLIGHT_NO_GPU)["result"] == "no_gpu"
    assert v.validate_report(stages, "lab-1", PREFLIGHT_NO_GPU)["fails_play"] is False
    assert v.validate_report(stages, "lab-1", PREFLIGHT_NO_GPU, True)["fails_play"] is True


def test_a_node_where_everything_was_skipped_is_not_a_pass():
    assert v.validate_report(all_stages(driver="skip", toolkit="skip", container="skip", plugin="skip"), "n", PREFLIGHT_GPU)["result"] == "skip"


def test_table():
    reports = {
        "gpu-01": v.validate_report(all_stages(driver="pass", toolkit="pass", container="pass", cuda="pass", plugin="skip"), "gpu-01",
                                    PREFLIGHT_GPU),
        "lab-1": v.validate_report(all_stages(driver="fail", toolkit="blocked", container="blocked", cuda="blocked", plugin="blocked"),
                                   "lab-1", PREFLIGHT_NO_GPU),
        "gone": None,
    }
    assert v.validate_table(reports, ["gpu-01", "lab-1", "gone"]) == [
        "node                         driver    toolkit   container cuda      plugin    result",
        "gpu-01                       PASS      PASS      PASS      PASS      SKIP      PASS",
        "    plugin: plugin reason",
        "lab-1                        FAIL      BLOCKED   BLOCKED   BLOCKED   BLOCKED   no GPU (not failed)",
        "    driver: driver reason",
        "gone                         -         -         -         -         -         not validated (failed earlier or unreachable)",
    ]


def test_the_filters_are_registered():
    assert sorted(v.FilterModule().filters()) == sorted(
        ["validate_gate", "validate_driver_stage", "validate_toolkit_stage", "validate_container_stage", "validate_cuda_stage",
         "validate_cuda_expected_gpus", "validate_node_capacity", "validate_plugin_expected", "validate_k8s_published", "validate_report", "validate_table"])


# ------------------------------------------- toolkit from gpunode_containerd
CONTAINERD_FACT = {
    "version": "1.7.24", "config_path": "/etc/containerd/config.toml", "checked": True, "problems": [],
    "runtime": {"name": "nvidia", "state": "present", "binary": "/usr/bin/nvidia-container-runtime", "binary_exists": True,
                "runtime_type": "io.containerd.runc.v2", "options": {"BinaryName": "/usr/bin/nvidia-container-runtime"}},
}


def test_toolkit_reads_the_containerd_fact_and_runs_no_module():
    result = v.validate_toolkit_stage(PROBES_OK, {"skipped": True}, CONTAINERD_FACT)
    assert result["status"] == "pass", result
    assert result["reason"].endswith("the nvidia runtime is configured in containerd 1.7.24 (confirmed by its config dump)")
    assert result["details"]["containerd_runtime_configured"] is True
    assert result["details"]["effective_runtime"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"


def test_toolkit_fails_on_the_containerd_facts_problems():
    fact = dict(CONTAINERD_FACT, problems=["runtime nvidia does not have SystemdCgroup = True in containerd config dump."])
    result = v.validate_toolkit_stage(PROBES_OK, {"skipped": True}, fact)
    assert result["status"] == "fail" and "SystemdCgroup = True" in result["reason"]
    assert result["details"]["containerd_runtime_configured"] is False


def test_toolkit_with_the_runtime_removed_or_not_read():
    removed = dict(CONTAINERD_FACT, runtime=dict(CONTAINERD_FACT["runtime"], state="absent", name=None, options={}))
    result = v.validate_toolkit_stage(PROBES_OK, {"skipped": True}, removed)
    assert result["status"] == "fail" and "containerd config dump has no nvidia runtime" in result["reason"]
    unread = dict(CONTAINERD_FACT, checked=False)
    result = v.validate_toolkit_stage(PROBES_OK, {"skipped": True}, unread)
    assert result["status"] == "fail" and result["details"]["containerd_runtime_configured"] is None
    assert "not read in this run" in result["reason"]


def test_driver_stage_records_what_it_checked():
    expected = {"driver_version": "535.261.03", "driver_branch": "535", "min_cuda_version": "", "gpu_count": 0}
    result = v.validate_driver_stage({"failed": True, "msg": "NVIDIA driver not loaded"}, PREFLIGHT_NO_GPU, expected)
    assert result["details"]["expected"] == {"driver_version": "535.261.03", "driver_branch": "535", "gpu_count": 0}


# ------------------------------------------- plugin stage from the Kubernetes roles' facts

PLUGIN = {"default_config": "default", "node_configs": {"ts-01": "ts4"}, "configs": {
    "default": {"mig_strategy": "none", "sharing": "none", "replicas": 1, "resource": "nvidia.com/gpu"},
    "ts4": {"mig_strategy": "none", "sharing": "time-slicing", "replicas": 4, "resource": "nvidia.com/gpu.shared"},
    "mixed": {"mig_strategy": "mixed", "sharing": "none", "replicas": 1, "resource": "nvidia.com/gpu"}}}
GFD = {"labels": ["nvidia.com/gpu.product", "nvidia.com/gpu.count"]}


def labelled(name, allocatable, labels):
    item = node(name, allocatable)
    item["status"]["allocatable"] = dict(allocatable)
    item["metadata"]["labels"] = dict(labels)
    return item


def test_plugin_expected_without_the_roles_facts_keeps_the_minimum():
    expected = v.validate_plugin_expected({}, "gpu-01", 8, "nvidia.com/gpu", 1)
    assert (expected["exact"], expected["minimum"], expected["labels"]) == (None, 1, [])


def test_plugin_stage_counts_gpus_times_replicas_of_the_nodes_config():
    published = {"device_plugin": PLUGIN, "gpu_feature_discovery": GFD}
    expected = v.validate_plugin_expected(published, "ts-01", 8)
    assert (expected["resource"], expected["exact"], expected["config"]) == ("nvidia.com/gpu.shared", 32, "ts4")
    gfd_labels = {"nvidia.com/gpu.product": "H200", "nvidia.com/gpu.count": "8"}
    good = {"resources": [labelled("ts-01", {"nvidia.com/gpu.shared": "32"}, gfd_labels)]}
    assert v.validate_node_capacity(good, "ts-01", expected=expected)["status"] == "pass"
    short = {"resources": [labelled("ts-01", {"nvidia.com/gpu.shared": "8"}, gfd_labels)]}
    result = v.validate_node_capacity(short, "ts-01", expected=expected)
    assert result["status"] == "fail"
    assert "expected 32 (8 GPUs x 4 replicas of config ts4)" in result["reason"]


def test_plugin_stage_names_missing_gfd_labels():
    expected = v.validate_plugin_expected({"device_plugin": PLUGIN, "gpu_feature_discovery": GFD}, "gpu-01", 2)
    nodes = {"resources": [labelled("gpu-01", {"nvidia.com/gpu": "2"}, {"nvidia.com/gpu.product": "H200"})]}
    result = v.validate_node_capacity(nodes, "gpu-01", expected=expected)
    assert result["status"] == "fail"
    assert "GPU Feature Discovery labels missing: nvidia.com/gpu.count" in result["reason"]


def test_plugin_stage_with_mig_mixed_sums_the_mig_resources():
    plugin = dict(PLUGIN, default_config="mixed")
    expected = v.validate_plugin_expected({"device_plugin": plugin}, "mig-01", 1)
    assert (expected["resource"], expected["exact"]) == ("nvidia.com/mig-*", None)
    nodes = {"resources": [labelled("mig-01", {"nvidia.com/mig-1g.18gb": "7"}, {})]}
    assert v.validate_node_capacity(nodes, "mig-01", expected=expected)["status"] == "pass"
    empty = {"resources": [labelled("mig-01", {"nvidia.com/gpu": "0"}, {})]}
    assert v.validate_node_capacity(empty, "mig-01", expected=expected)["status"] == "fail"
