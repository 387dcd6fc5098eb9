"""The workload's calls through NVIDIA's real cuda-bindings, up to the driver.

No libcuda.so.1 exists here, so no call can reach a GPU. But cuda-bindings converts
every argument before it loads the driver: a call whose arguments it accepts fails
with DynamicLibNotFoundError, one it does not accept with TypeError. Each call the
workload makes is sent to the real binding first, then answered by the
FakeCudaDriver test double, which builds its handles with the binding's own types
(CUdevice, CUdeviceptr, CUcontext, ...), so those flow back into the next real
call as they would on a GPU node.
"""

import pytest
from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload

from ...fake_cuda import FakeCudaDriver, gpu

real = pytest.importorskip("cuda.bindings.driver", reason="cuda-bindings is in requirements/controller.txt, not in this leg's pins")


class ThroughTheBinding(object):
    """The real binding's enums and types; each cu* call converted by the real binding, answered by ``fake``."""

    def __init__(self, fake):
        self.fake = fake
        self.converted = []

    def __getattr__(self, name):
        value = getattr(real, name)
        if not (name.startswith("cu") and callable(value)):
            return value

        def call(*args):
            try:
                value(*args)
            except Exception as exc:  # noqa: BLE001 - which exception it is, is the test
                if type(exc).__name__ != "DynamicLibNotFoundError":
                    raise AssertionError("cuda-bindings refused the arguments of %s%r: %s: %s" % (name, args, type(exc).__name__, exc)) from None
            else:
                raise AssertionError("%s returned without a driver" % name)
            self.converted.append(name)
            return getattr(self.fake, name)(*args)

        return call


def test_every_call_of_the_workload_is_accepted_by_the_binding():
    api = ThroughTheBinding(FakeCudaDriver([gpu(0), gpu(1)], handles=real))
    report = workload.run_all(api, elements=1000)
    assert report["error"] is None and [d["passed"] for d in report["devices"]] == [True, True], report
    # The whole path, in order, on each GPU: nothing the workload calls was left out of the check.
    per_gpu = ["cuDeviceGet", "cuDeviceGetName", "cuDeviceGetUuid", "cuDeviceGetAttribute", "cuDeviceGetAttribute", "cuDeviceGetAttribute",
               "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent", "cuModuleLoadData", "cuModuleGetFunction", "cuMemAlloc", "cuMemAlloc",
               "cuMemAlloc", "cuMemcpyHtoD", "cuMemcpyHtoD", "cuLaunchKernel", "cuCtxSynchronize", "cuMemcpyDtoH", "cuMemFree",
               "cuMemFree", "cuMemFree", "cuModuleUnload", "cuDevicePrimaryCtxRelease"]
    assert api.converted == ["cuInit", "cuDriverGetVersion", "cuDeviceGetCount"] + per_gpu * 2


def test_without_a_driver_the_real_binding_says_library_not_found():
    report = workload.run_all(real, elements=16)
    assert report["error"] == "LIBRARY_NOT_FOUND" and "libcuda1" in report["message"]
