"""The CUDA workload runner and its error mapping, over the FakeCudaDriver test double (no GPU here)."""

import json
import sys

import pytest
from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload

from ...fake_cuda import FakeCudaDriver, gpu

SMALL = 1000  # not a multiple of the block: the grid's last block is partly idle


def test_vector_add_passes_on_every_gpu():
    api = FakeCudaDriver([gpu(0), gpu(1)])
    report = workload.run_all(api, elements=SMALL)
    assert report["error"] is None and report["cuda_driver_version"] == "13.0" and report["device_count"] == 2
    assert [d["index"] for d in report["devices"]] == [0, 1]
    for device in report["devices"]:
        assert device["passed"] is True and device["error"] is None
        assert device["name"] == "NVIDIA H100 80GB HBM3" and device["compute_capability"] == "9.0"
        assert device["message"] == "vector add of 1000 floats correct"
        assert device["elapsed_s"] >= device["kernel_s"] >= 0 and device["jit_s"] >= 0
    assert report["devices"][1]["uuid"] == "GPU-10111213-1415-1617-1819-1a1b1c1d1e1f"
    # Everything made is given back: three buffers, the module, the primary context, per GPU.
    assert [kind for kind, _handle in api.released].count("memory") == 6 and ("ctx", 1) in api.released
    assert not api.memory


def test_only_the_devices_asked_for():
    api = FakeCudaDriver([gpu(0), gpu(1), gpu(2)])
    report = workload.run_all(api, devices=[2], elements=SMALL)
    assert [d["index"] for d in report["devices"]] == [2] and report["devices"][0]["passed"]


def test_a_device_that_does_not_exist_is_invalid_device():
    report = workload.run_all(FakeCudaDriver([gpu(0)]), devices=[3], elements=SMALL)
    device = report["devices"][0]
    assert device["passed"] is False and device["error"] == "CUDA_ERROR_INVALID_DEVICE"
    assert "MIG is on and no MIG device" in device["message"]


def test_wrong_sums_are_a_result_mismatch():
    report = workload.run_all(FakeCudaDriver([gpu(0), gpu(1, wrong_sum=True)]), elements=SMALL)
    assert report["devices"][0]["passed"] is True
    bad = report["devices"][1]
    assert bad["passed"] is False and bad["error"] == "RESULT_MISMATCH"
    assert bad["message"].startswith("RESULT_MISMATCH in vector_add: 1 of 1000 sums wrong, the first at 500")
    assert "dcgmi diag" in bad["message"]


def test_prohibited_compute_mode_stops_before_a_context():
    api = FakeCudaDriver([gpu(0, mode=2)])
    device = workload.run_all(api, elements=SMALL)["devices"][0]
    assert device["error"] == "COMPUTE_MODE_PROHIBITED" and "nvidia-smi -i <index> -c DEFAULT" in device["message"]
    assert "cuDevicePrimaryCtxRetain" not in api.calls


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("CUDA_ERROR_NO_DEVICE", "NVIDIA_VISIBLE_DEVICES"),
        ("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "forward compatibility package"),
        ("CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", "supports the CUDA version natively"),
        ("CUDA_ERROR_SYSTEM_NOT_READY", "Fabric Manager"),
        ("CUDA_ERROR_STUB_LIBRARY", "stub"),
        ("CUDA_ERROR_OPERATING_SYSTEM", "cgroup"),
        ("CUDA_ERROR_UNKNOWN", "daemon-reload"),
    ],
)
def test_cuinit_errors_stop_the_run_with_advice(name, advice):
    report = workload.run_all(FakeCudaDriver(fail={"cuInit": name}), elements=SMALL)
    assert report["error"] == name and report["devices"] == [] and report["cuda_driver_version"] is None
    assert report["message"].startswith("%s in cuInit: " % name) and advice in report["message"]


@pytest.mark.parametrize(
    ("call", "name", "advice"),
    [
        ("cuDevicePrimaryCtxRetain", "CUDA_ERROR_ECC_UNCORRECTABLE", "ECC,ROW_REMAPPER"),
        ("cuDevicePrimaryCtxRetain", "CUDA_ERROR_DEVICE_UNAVAILABLE", "exclusive-process"),
        ("cuModuleLoadData", "CUDA_ERROR_JIT_COMPILER_NOT_FOUND", "NVIDIA_DRIVER_CAPABILITIES must include compute"),
        ("cuModuleLoadData", "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "upgrade the driver"),
        ("cuMemAlloc", "CUDA_ERROR_OUT_OF_MEMORY", "nvidia-smi"),
        ("cuLaunchKernel", "CUDA_ERROR_LAUNCH_FAILED", "xid"),
        ("cuCtxSynchronize", "CUDA_ERROR_ILLEGAL_ADDRESS", "xid"),
        ("cuCtxSynchronize", "CUDA_ERROR_ECC_UNCORRECTABLE", "drain it"),
    ],
)
def test_device_errors_fail_that_gpu_only(call, name, advice):
    api = FakeCudaDriver([gpu(0), gpu(1, fail={call: name})])
    report = workload.run_all(api, elements=SMALL)
    good, bad = report["devices"]
    assert good["passed"] is True
    assert bad["passed"] is False and bad["error"] == name
    assert bad["message"].startswith("%s in %s: " % (name, call)) and advice in bad["message"]
    # The primary context is released after a failure too (unless retaining it failed).
    assert (("ctx", 1) in api.released) is (call != "cuDevicePrimaryCtxRetain")


def test_an_unknown_code_keeps_its_name():
    failure = workload.CudaFailure("CUDA_ERROR_TENSOR_MEMORY_LEAK", "cuCtxSynchronize")
    assert "CUDA_ERROR_TENSOR_MEMORY_LEAK in cuCtxSynchronize" in str(failure)
    assert "CUDA driver API documentation" in failure.advice


def test_missing_libcuda_is_library_not_found_not_a_traceback():
    report = workload.run_all(FakeCudaDriver(missing_library=True), elements=SMALL)
    assert report["error"] == "LIBRARY_NOT_FOUND"
    assert "libcuda1" in report["message"] and "can only be found via system search" in report["message"]


def test_a_python_error_in_the_binding_is_a_verdict():
    class Broken(FakeCudaDriver):
        def cuDriverGetVersion(self):
            raise TypeError("an argument the binding did not expect")

    report = workload.run_all(Broken(), elements=SMALL)
    assert report["error"] == "PYTHON_ERROR" and "TypeError: an argument" in report["message"]


def test_a_binding_without_uuid_reports_it_not_supported():
    device = workload.run_all(FakeCudaDriver(no_uuid=True), elements=SMALL)["devices"][0]
    assert device["passed"] is True and device["uuid"] is None and device["not_supported"] == ["uuid"]


@pytest.mark.parametrize(
    ("have", "want", "problem"),
    [
        ("12.8", "13.0", "the driver supports CUDA 12.8; the workload needs 13.0: upgrade the driver to a driver branch >= 580 or use the CUDA"
                         " forward compatibility package (cuda-compat, data-center GPUs only)"),
        ("12.2", "12.4", "upgrade the driver to a driver branch >= 550"),
        ("12.6", "12.7", "a driver branch >= 570"),  # 12.7 was never released: the next one up
        ("13.0", "14.0", "a driver newer than branch 590"),
        ("13.0", "13.0", None),
        ("13.1", "12.8", None),
        ("13.0", "", None),
        (None, "12.0", "the driver does not report its CUDA version; the workload needs CUDA 12.0"),
    ],
)
def test_cuda_version_problem(have, want, problem):
    found = workload.cuda_version_problem(have, want)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_version_text():
    assert workload.version_text(12080) == "12.8" and workload.version_text(13000) == "13.0" and workload.version_text(None) is None


def test_the_script_prints_its_report_as_json(monkeypatch, capsys):
    api = FakeCudaDriver([gpu(0)])
    monkeypatch.setattr(workload, "import_binding", lambda: (api, None))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert workload.main(["--sys-path", "/opt/site", "--device", "0", "--elements", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sys.path[0] == "/opt/site"
    assert report["devices"][0]["passed"] is True and report["devices"][0]["message"] == "vector add of 64 floats correct"
    assert "libcuda" in report  # where the library came from (none in this process)


def test_the_script_without_the_binding(monkeypatch, capsys):
    monkeypatch.setattr(workload, "import_binding", lambda: (None, "ModuleNotFoundError: No module named 'cuda'"))
    workload.main([])
    report = json.loads(capsys.readouterr().out)
    assert report["error"] == "BINDING_MISSING" and "No module named 'cuda'" in report["message"]


def test_the_ptx_is_the_kernel_the_runner_names():
    text = workload.PTX.decode()
    assert ".entry %s(" % workload.KERNEL.decode() in text
    assert ".version 6.0" in text and ".target sm_50" in text  # old enough for every supported driver's JIT
