"""cuda_workload through its main(), over recorded and built host trees and the FakeCudaDriver test double."""

import json
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload, interpreters
from ansible_collections.gpunode.nvidia.plugins.modules import cuda_workload

from ... import hosts
from ...conftest import FIXTURES
from ...fake_cuda import FakeCudaDriver, gpu
from ...utils import run_module

LAB_NODE = os.path.join(FIXTURES, "hosts", "lab-node-bookworm")
IMAGE = {"image": "gpunode.local/gpunode/cuda-workload:0123456789abcdef",
         "command": ["/usr/bin/python3.11", "-S", "-B", "/gpunode/cuda_workload.py", "--sys-path", "/opt/gpunode/venv/lib/python3.11/site-packages"]}


@pytest.fixture
def node(monkeypatch, tmp_path):
    """Point the module at a host tree; returns a setter that also installs a binding (or none)."""

    def use(root, api=None):
        monkeypatch.setattr(cuda_workload, "ROOT", str(root))
        monkeypatch.setattr(workload, "import_binding", lambda: (api, None if api else "ModuleNotFoundError: No module named 'cuda'"))
        monkeypatch.setattr(interpreters, "respawn_for", lambda name, tried=(): ["/opt/gpunode/venv/bin/python3"])
        return api

    return use


@pytest.fixture
def ctr(monkeypatch):
    """A test double for ctr (under coreutils' timeout): the first command answers a canned (rc, stdout, stderr), the
    others (clean-up) rc 0; records every argv, the timeout prefix taken off the run. ``installed``: the binaries found."""
    seen = []

    def answer(rc, out, err="", installed=("ctr", "timeout")):
        def run_command(self, argv, **_kwargs):
            if argv[0] == "/usr/bin/timeout":
                assert argv[1:3] == ["--kill-after=10", "120"] or argv[2].isdigit()
                argv = argv[3:]
            seen.append(argv)
            return (rc, out, err) if len(seen) == 1 else (0, "", "")

        monkeypatch.setattr(AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name if name in installed else None)
        return seen

    return answer


def test_passes_on_the_gpu_machine(node, tmp_path, capsys):
    node(hosts.gpu_machine_h100(tmp_path), FakeCudaDriver([gpu(0)]))
    failed, result = run_module(cuda_workload.main, {"elements": 512}, capsys)
    assert not failed and result["changed"] is False and result["passed"] is True
    assert result["cuda_driver_version"] == "13.0"
    assert result["summary"] == "vector add passed on 1 of 1 GPU(s) on the host (CUDA 13.0)"
    assert result["host"]["devices"][0]["passed"] is True and result["container"] is None


def test_check_mode_runs_the_same(node, tmp_path, capsys):
    node(hosts.gpu_machine_h100(tmp_path), FakeCudaDriver([gpu(0)]))
    failed, result = run_module(cuda_workload.main, {"elements": 512, "_ansible_check_mode": True}, capsys)
    assert not failed and result["passed"] is True and result["changed"] is False


def test_a_lab_node_says_no_gpu(node, capsys):
    node(LAB_NODE, FakeCudaDriver([gpu(0)]))
    failed, result = run_module(cuda_workload.main, {}, capsys)
    assert failed and result["passed"] is False
    assert result["host"]["error"] == "NO_GPU" and result["msg"].startswith("no NVIDIA GPU on the PCI bus")
    assert result["checks"] == [{"check": "host", "status": "fail", "error": "NO_GPU", "message": result["host"]["message"]}]


def test_a_gpu_without_its_driver_says_why(node, tmp_path, capsys):
    node(hosts.workstation_nouveau(tmp_path), FakeCudaDriver([gpu(0)]))
    failed, result = run_module(cuda_workload.main, {}, capsys)
    assert failed and result["host"]["error"] == "DRIVER_NOT_LOADED"
    assert "NVIDIA driver not loaded" in result["msg"] and "nouveau is loaded" in result["msg"]


def test_no_binding_anywhere(node, tmp_path, capsys):
    node(hosts.gpu_machine_h100(tmp_path), None)
    failed, result = run_module(cuda_workload.main, {}, capsys)
    assert failed and result["host"]["error"] == "BINDING_MISSING"
    assert "cuda-bindings (import cuda.bindings.driver)" in result["msg"] and "driver_cuda_bindings_package" in result["msg"]
    assert result["host"]["interpreters_tried"] == ["/opt/gpunode/venv/bin/python3"]


def test_one_gpu_failing_fails_the_node_and_names_it(node, tmp_path, capsys):
    node(hosts.hgx_h100(tmp_path), FakeCudaDriver([gpu(i) for i in range(7)] + [gpu(7, fail={"cuLaunchKernel": "CUDA_ERROR_LAUNCH_FAILED"})]))
    failed, result = run_module(cuda_workload.main, {"elements": 256}, capsys)
    assert failed and result["checks"][0]["error"] == "CUDA_ERROR_LAUNCH_FAILED"
    assert result["msg"].startswith("vector add failed on 1 of 8 GPU(s): GPU 7: CUDA_ERROR_LAUNCH_FAILED in cuLaunchKernel")


def test_min_cuda_version_names_the_branch(node, tmp_path, capsys):
    node(hosts.gpu_machine_h100(tmp_path), FakeCudaDriver([gpu(0)], version=12080))
    failed, result = run_module(cuda_workload.main, {"elements": 64, "min_cuda_version": "13.0"}, capsys)
    assert failed and [c["status"] for c in result["checks"]] == ["pass", "fail"]
    assert result["msg"] == ("the driver supports CUDA 12.8; the workload needs 13.0: upgrade the driver to a driver branch >= 580"
                             " or use the CUDA forward compatibility package (cuda-compat, data-center GPUs only)")


def test_min_cuda_version_met(node, tmp_path, capsys):
    node(hosts.gpu_machine_h100(tmp_path), FakeCudaDriver([gpu(0)], version=13000))
    failed, result = run_module(cuda_workload.main, {"elements": 64, "min_cuda_version": "12.8"}, capsys)
    assert not failed and result["checks"][-1]["message"] == "the driver supports CUDA 13.0 (at least 12.8)"


def container_report(**overrides):
    report = {"cuda_driver_version": "13.0", "device_count": 1, "error": None, "message": None, "libcuda": "/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04",
              "devices": [{"index": 0, "passed": True, "error": None, "message": "vector add of 64 floats correct"}]}
    report.update(overrides)
    return json.dumps(report)


def test_through_the_runtime(node, ctr, capsys):
    seen = ctr(0, container_report() + "\n")
    node(LAB_NODE)
    failed, result = run_module(cuda_workload.main, {"host": False, "elements": 64, "devices": [0], "container": IMAGE}, capsys)
    assert not failed and result["host"] is None and result["container"]["rc"] == 0
    assert result["summary"] == ("vector add passed on 1 of 1 GPU(s) in a container (libcuda from"
                                 " /usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04) (CUDA 13.0)")
    argv = seen[0]
    assert argv[:7] == ["/usr/bin/ctr", "--namespace", "gpunode-validate", "run", "--rm", "--runc-binary", "/usr/bin/nvidia-container-runtime"]
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in argv and "NVIDIA_VISIBLE_DEVICES=all" in argv
    assert argv[argv.index(IMAGE["image"]) + 1].startswith("gpunode-cuda-")
    assert argv[-len(IMAGE["command"]) - 4:] == IMAGE["command"] + ["--device", "0", "--elements", "64"]


def test_through_cdi_devices(node, ctr, capsys):
    seen = ctr(0, container_report())
    node(LAB_NODE)
    spec = dict(IMAGE, cdi_devices=["nvidia.com/gpu=0", "nvidia.com/gpu=1"])
    failed, _result = run_module(cuda_workload.main, {"host": False, "container": spec}, capsys)
    argv = seen[0]
    assert not failed
    assert argv[7:11] == ["--device", "nvidia.com/gpu=0", "--device", "nvidia.com/gpu=1"]
    assert not [a for a in argv if a.startswith("NVIDIA_VISIBLE_DEVICES=")]  # CDI alone decides what the container gets


def test_a_runtime_that_injects_nothing(node, ctr, capsys):
    ctr(0, container_report(error="LIBRARY_NOT_FOUND", message="LIBRARY_NOT_FOUND in cuInit", devices=[], libcuda=None))
    node(LAB_NODE)
    spec = dict(IMAGE, runtime_binary="/usr/bin/runc")
    failed, result = run_module(cuda_workload.main, {"host": False, "container": spec}, capsys)
    assert failed and result["container"]["error"] == "LIBRARY_NOT_FOUND"
    assert result["msg"].startswith("libcuda.so.1 is not in the container: the runtime (/usr/bin/runc) did not inject the driver's CUDA library.")


def test_a_container_that_does_not_start(node, ctr, capsys):
    err = "ctr: failed to create shim task: OCI runtime create failed: nvidia-container-cli: initialization error: load library failed"
    ctr(1, "", err + "\n")
    node(LAB_NODE)
    failed, result = run_module(cuda_workload.main, {"host": False, "container": IMAGE}, capsys)
    assert failed and result["container"]["error"] == "CONTAINER_FAILED" and result["container"]["rc"] == 1
    assert result["msg"] == "the container did not run (rc 1): " + err


def test_a_container_that_hangs_is_killed_and_removed(node, ctr, capsys):
    seen = ctr(124, "")
    node(LAB_NODE)
    failed, result = run_module(cuda_workload.main, {"host": False, "container": IMAGE}, capsys)
    assert failed and result["container"]["error"] == "CONTAINER_TIMEOUT" and "ran past 120 s" in result["msg"]
    name = seen[0][seen[0].index(IMAGE["image"]) + 1]
    assert [argv[3:] for argv in seen[1:]] == [["task", "kill", "--signal", "SIGKILL", name], ["task", "delete", "--force", name],
                                               ["containers", "delete", name]]


def test_without_ctr_the_host_part_is_kept(node, ctr, tmp_path, capsys):
    ctr(0, "", installed=("timeout",))
    node(hosts.gpu_machine_h100(tmp_path), FakeCudaDriver([gpu(0)]))
    failed, result = run_module(cuda_workload.main, {"elements": 64, "container": IMAGE}, capsys)
    assert failed and result["host"]["devices"][0]["passed"] is True
    assert result["container"]["error"] == "CTR_MISSING" and "install containerd" in result["msg"]


@pytest.mark.parametrize(("seen", "status"), [(8, "pass"), (7, "fail")])
def test_cuda_must_see_the_gpus_nvml_saw(node, tmp_path, capsys, seen, status):
    node(hosts.hgx_h100(tmp_path), FakeCudaDriver([gpu(i) for i in range(seen)]))
    failed, result = run_module(cuda_workload.main, {"elements": 64, "expected_gpus": 8}, capsys)
    assert failed is (status == "fail") and result["checks"][-1]["check"] == "gpu_count" and result["checks"][-1]["status"] == status
    if failed:
        assert result["msg"].startswith("CUDA sees 7 GPU(s), NVML 8: a GPU in MIG mode with no instance")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"elements": 0}, "elements must be between 1 and"),
        ({"devices": [-1]}, "devices are CUDA device indexes"),
        ({"min_cuda_version": "new"}, "min_cuda_version must be major.minor"),
        ({"container": {"image": "x"}}, "missing required arguments: command"),
        ({"container": dict(IMAGE, timeout=0)}, "container.timeout must be at least 1 second"),
    ],
)
def test_bad_arguments(node, capsys, args, message):
    node(LAB_NODE)
    failed, result = run_module(cuda_workload.main, args, capsys)
    assert failed and message in result["msg"]
