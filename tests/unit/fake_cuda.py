"""FakeCudaDriver test double: the ``cuda.bindings.driver`` API over GPUs that do not exist here.

No GPU (and no working libcuda.so.1) can be reached from the lab or CI. This
double answers the calls the workload makes the way cuda-bindings does: every
call returns a tuple whose first item is a ``CUresult`` (an enum with the
real names and codes), device pointers are objects that convert with int(),
and ``cuMemcpyHtoD``/``cuMemcpyDtoH``/``cuLaunchKernel`` take raw host
addresses and an array of argument pointers, which it reads and writes with
ctypes: so the workload's marshalling is exercised, not only its control flow.
The kernel is "run" in Python (c = a + b), unless a fault is asked for.
"""

import ctypes
import enum
import struct

# The CUresult codes the workload maps (cuda.h; the same values cuda-bindings' enum has).
CODES = {
    "CUDA_SUCCESS": 0,
    "CUDA_ERROR_INVALID_VALUE": 1,
    "CUDA_ERROR_OUT_OF_MEMORY": 2,
    "CUDA_ERROR_NOT_INITIALIZED": 3,
    "CUDA_ERROR_STUB_LIBRARY": 34,
    "CUDA_ERROR_DEVICE_UNAVAILABLE": 46,
    "CUDA_ERROR_NO_DEVICE": 100,
    "CUDA_ERROR_INVALID_DEVICE": 101,
    "CUDA_ERROR_NO_BINARY_FOR_GPU": 209,
    "CUDA_ERROR_ECC_UNCORRECTABLE": 214,
    "CUDA_ERROR_INVALID_PTX": 218,
    "CUDA_ERROR_JIT_COMPILER_NOT_FOUND": 221,
    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION": 222,
    "CUDA_ERROR_OPERATING_SYSTEM": 304,
    "CUDA_ERROR_NOT_FOUND": 500,
    "CUDA_ERROR_ILLEGAL_ADDRESS": 700,
    "CUDA_ERROR_LAUNCH_TIMEOUT": 702,
    "CUDA_ERROR_LAUNCH_FAILED": 719,
    "CUDA_ERROR_NOT_PERMITTED": 800,
    "CUDA_ERROR_NOT_SUPPORTED": 801,
    "CUDA_ERROR_SYSTEM_NOT_READY": 802,
    "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH": 803,
    "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE": 804,
    "CUDA_ERROR_UNKNOWN": 999,
}
CUresult = enum.IntEnum("CUresult", CODES)
CUdevice_attribute = enum.IntEnum(
    "CUdevice_attribute",
    {"CU_DEVICE_ATTRIBUTE_COMPUTE_MODE": 20, "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR": 75,
     "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR": 76},
)
CUcomputemode = enum.IntEnum(
    "CUcomputemode",
    {"CU_COMPUTEMODE_DEFAULT": 0, "CU_COMPUTEMODE_PROHIBITED": 2, "CU_COMPUTEMODE_EXCLUSIVE_PROCESS": 3},
)
OK = CUresult.CUDA_SUCCESS


class DynamicLibNotFoundError(RuntimeError):
    """What cuda.pathfinder raises when libcuda.so.1 cannot be loaded (its name is what the workload reads)."""


class CUdeviceptr(object):
    def __init__(self, value):
        self.value = value

    def __int__(self):
        return self.value


class CUuuid(object):
    def __init__(self, raw):
        self.bytes = raw


def gpu(index=0, **overrides):
    """One healthy H100 as CUDA reports it."""
    data = {"name": b"NVIDIA H100 80GB HBM3", "uuid": bytes(bytearray(range(16 * index, 16 * index + 16))), "cc": (9, 0),
            "mode": 0, "fail": {}, "wrong_sum": False}
    data.update(overrides)
    return data


class Handles(object):
    """The handle types the double answers with; tests/unit/plugins/module_utils/test_cuda_bindings_marshalling.py
    passes the real binding instead, so that its own handle types flow back into its calls."""

    CUdevice = int
    CUdeviceptr = CUdeviceptr
    CUcontext = int
    CUmodule = int
    CUfunction = int


class FakeCudaDriver(object):
    """``fail``: {call name: CUresult name} for calls that fail on every GPU; per GPU: gpu(fail={...})."""

    def __init__(self, gpus=None, version=13000, fail=None, *, missing_library=False, no_uuid=False, handles=Handles):
        self.handles = handles
        self.functions = {}
        self.gpus = [gpu(0)] if gpus is None else gpus
        self.version = version
        self.fail = fail or {}
        self.missing_library = missing_library
        self.no_uuid = no_uuid
        self.current = None
        self.memory = {}
        self.next_pointer = 0x7F0000000000
        self.calls = []
        self.released = []

    CUresult = CUresult
    CUdevice_attribute = CUdevice_attribute
    CUcomputemode = CUcomputemode

    def _answer(self, call, *values):
        self.calls.append(call)
        device = self.gpus[self.current] if self.current is not None and self.current < len(self.gpus) else {}
        name = device.get("fail", {}).get(call) or self.fail.get(call)
        if name:
            return (CUresult[name],) + tuple(None for _unused in values)
        return (OK,) + values

    # ------------------------------------------------------------ init
    def cuInit(self, flags):
        if self.missing_library:
            raise DynamicLibNotFoundError('"cuda" is an NVIDIA driver library and can only be found via system search.')
        return self._answer("cuInit")

    def cuDriverGetVersion(self):
        return self._answer("cuDriverGetVersion", self.version)

    def cuDeviceGetCount(self):
        return self._answer("cuDeviceGetCount", len(self.gpus))

    # ------------------------------------------------------------ devices
    def cuDeviceGet(self, index):
        if index >= len(self.gpus):
            self.calls.append("cuDeviceGet")
            return (CUresult.CUDA_ERROR_INVALID_DEVICE, None)
        self.current = index
        return self._answer("cuDeviceGet", self.handles.CUdevice(index))

    def cuDeviceGetName(self, length, dev):
        return self._answer("cuDeviceGetName", self.gpus[int(dev)]["name"][:length])

    def __getattribute__(self, name):
        if name == "cuDeviceGetUuid" and object.__getattribute__(self, "no_uuid"):  # an older binding
            raise AttributeError("module 'cuda.bindings.driver' has no attribute 'cuDeviceGetUuid'")
        return object.__getattribute__(self, name)

    def cuDeviceGetUuid(self, dev):
        return self._answer("cuDeviceGetUuid", CUuuid(self.gpus[int(dev)]["uuid"]))

    def cuDeviceGetAttribute(self, attribute, dev):
        data = self.gpus[int(dev)]
        value = {CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_MODE: data["mode"],
                 CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: data["cc"][0],
                 CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: data["cc"][1]}[attribute]
        return self._answer("cuDeviceGetAttribute", value)

    # ------------------------------------------------------------ context and module
    def cuDevicePrimaryCtxRetain(self, dev):
        return self._answer("cuDevicePrimaryCtxRetain", self.handles.CUcontext(int(dev)))

    def cuDevicePrimaryCtxRelease(self, dev):
        self.released.append(("ctx", int(dev)))
        return (OK,)

    def cuCtxSetCurrent(self, ctx):
        return self._answer("cuCtxSetCurrent")

    def cuModuleLoadData(self, image):
        # The address of a NUL-terminated PTX text, read the way the driver reads it.
        assert isinstance(image, int) and b".entry vector_add(" in ctypes.string_at(image)
        return self._answer("cuModuleLoadData", self.handles.CUmodule(1))

    def cuModuleGetFunction(self, module, name):
        function = self.handles.CUfunction(len(self.functions) + 1)
        self.functions[int(function)] = name
        return self._answer("cuModuleGetFunction", function)

    def cuModuleUnload(self, module):
        self.released.append(("module", int(module)))
        return (OK,)

    # ------------------------------------------------------------ memory and launch
    def cuMemAlloc(self, size):
        answer = self._answer("cuMemAlloc", None)
        if answer[0] != OK:
            return answer
        pointer = self.handles.CUdeviceptr(self.next_pointer)
        self.next_pointer += 1 << 32
        self.memory[int(pointer)] = bytearray(size)
        return (OK, pointer)

    def cuMemFree(self, pointer):
        self.released.append(("memory", int(pointer)))
        self.memory.pop(int(pointer), None)
        return (OK,)

    def cuMemcpyHtoD(self, dst, src_address, size):
        answer = self._answer("cuMemcpyHtoD")
        if answer[0] == OK:
            self.memory[int(dst)][:] = ctypes.string_at(src_address, size)
        return answer

    def cuMemcpyDtoH(self, dst_address, src, size):
        answer = self._answer("cuMemcpyDtoH")
        if answer[0] == OK:
            ctypes.memmove(dst_address, bytes(self.memory[int(src)]), size)
        return answer

    def cuLaunchKernel(self, function, gx, gy, gz, bx, by, bz, shared, stream, params_address, extra):  # noqa: PLR0917 - the API's own signature
        answer = self._answer("cuLaunchKernel")
        if answer[0] != OK:
            return answer
        name = self.functions[int(function)]
        assert name == b"vector_add" and (gy, gz, by, bz, shared, int(stream), extra) == (1, 1, 1, 1, 0, 0, 0)
        # kernelParams: four pointers, to the three device pointers (u64) and n (u32).
        pointers = (ctypes.c_void_p * 4).from_address(params_address)
        a, b, c = [ctypes.c_uint64.from_address(pointers[i]).value for i in range(3)]
        n = ctypes.c_uint32.from_address(pointers[3]).value
        assert gx * bx >= n > (gx - 1) * bx, "the grid must cover n threads exactly to the block"
        left = struct.unpack("%df" % n, bytes(self.memory[a][: 4 * n]))
        right = struct.unpack("%df" % n, bytes(self.memory[b][: 4 * n]))
        sums = [x + y for x, y in zip(left, right)]
        if self.gpus[self.current].get("wrong_sum"):
            sums[n // 2] += 1.0
        self.memory[c][: 4 * n] = struct.pack("%df" % n, *sums)
        return (OK,)

    def cuCtxSynchronize(self):
        return self._answer("cuCtxSynchronize")
