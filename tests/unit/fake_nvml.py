"""FakeNVML test double: the pynvml binding over GPUs that do not exist here.

No GPU (and no libnvidia-ml) can be reached from the lab or CI, so the device
calls are answered from Python data. Everything else is the real binding's:
the NVML_ERROR_* codes, the NVMLError class hierarchy and the ctypes structures
come from the installed nvidia-ml-py, so errors are raised exactly as the real
binding raises them. The GPUs below are written from shared/notes (the H100
machine's readings) and NVML's documented return values.
"""

import copy
import types

import pynvml as real

ENABLED, DISABLED = 1, 0


def h100(index=0, **overrides):
    """One H100 SXM as read on the GPU machine (notes/gpu-machine.md), healthy."""
    gpu = {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-4a1d6a0e-8a57-1f2c-6c1b-0a9e3c5d7f1%d" % index,
        "bus_id": "00000000:%02X:00.0" % (0x18 + index),
        "memory": (85520809984, 649658368, 84871151616),  # total, used, free (bytes)
        "persistence": ENABLED,
        "mig": [DISABLED, DISABLED],
        "mig_devices": [],
        "ecc": [ENABLED, ENABLED],
        "ecc_errors": {0: 0, 1: 0},  # volatile, aggregate uncorrected
        "compute_mode": 0,
        "capability": (9, 0),
        "temperature": 31,
        "power_mw": 69871,
        "clock_events": 0x1,  # gpu_idle
        "remapped_rows": (0, 0, 0, 0),
        "retired_pages": Err(real.NVML_ERROR_NOT_SUPPORTED),  # as read on the H100
        "nvlink": Err(real.NVML_ERROR_NOT_SUPPORTED),  # as read on the H100 machine
        "fabric": {"state": 0, "status": 0, "clique": 0},  # NVML_GPU_FABRIC_STATE_NOT_SUPPORTED
    }
    gpu.update(overrides)
    return gpu


def hgx_gpu(index, **overrides):
    """An HGX H100 GPU: 18 NVLinks up, fabric registered by Fabric Manager."""
    base = {"nvlink": [1] * 18, "fabric": {"state": 3, "status": 0, "clique": 32766}}
    base.update(overrides)
    return h100(index, **base)


def _error(code):
    return real.NVMLError(code)


class Err(object):
    """A GPU field whose NVML call returns this NVML_ERROR_* code."""

    def __init__(self, code):
        self.code = code


class FakeNVML(types.ModuleType):
    """A stand-in for the ``pynvml`` module.

    ``gpus``: GPU dicts (see h100()); a field holding Err(code) makes that
    call raise the real binding's error for the code; ``lost: True`` makes
    every call on the GPU raise GpuIsLost. ``init_error``: NVML_ERROR_* raised by nvmlInit.
    ``missing``: binding functions to delete (an older nvidia-ml-py).
    ``driver_lacks``: functions the driver lacks (raise FunctionNotFound).
    """

    def __init__(self, gpus=(), *, init_error=None, missing=(), driver_lacks=(), driver="580.159.04", cuda=13000, nvml="13.580.159.04"):
        types.ModuleType.__init__(self, "pynvml")
        for name in dir(real):
            if name.startswith(("NVML_", "NVMLError", "c_nvml", "nvmlGpuFabricInfo", "nvmlClocks")):
                setattr(self, name, getattr(real, name))
        self.gpus = [copy.deepcopy(g) for g in gpus]
        self.init_error = init_error
        self.driver = driver
        self.cuda = cuda
        self.nvml = nvml
        self.driver_lacks = set(driver_lacks)
        self.calls = []
        self.initialized = 0
        self._missing = set(missing)
        for name in dir(type(self)):
            if name.startswith("nvml") and name not in self._missing:
                setattr(self, name, self._wrap(name, getattr(self, name)))

    def __getattribute__(self, name):
        if name.startswith("nvml") and name in types.ModuleType.__getattribute__(self, "__dict__").get("_missing", ()):
            raise AttributeError(name)
        return types.ModuleType.__getattribute__(self, name)

    def _wrap(self, name, fn):
        def call(*args):
            self.calls.append(name)
            if name in self.driver_lacks:
                raise _error(real.NVML_ERROR_FUNCTION_NOT_FOUND)
            if name not in ("nvmlInit", "nvmlShutdown") and not self.initialized:
                raise _error(real.NVML_ERROR_UNINITIALIZED)
            return fn(*args)

        return call

    # -- library
    def nvmlInit(self):
        if self.init_error is not None:
            raise _error(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self):
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return self.cuda

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda

    def nvmlSystemGetNVMLVersion(self):
        return self.nvml

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        if index >= len(self.gpus):
            raise _error(real.NVML_ERROR_INVALID_ARGUMENT)
        value = self.gpus[index].get("handle")
        if isinstance(value, Err):
            raise _error(value.code)
        return ("gpu", index)

    # -- per device; a handle is ("gpu", i) or ("mig", i, slot)
    def _get(self, handle, key):
        gpu = self.gpus[handle[1]]
        if handle[0] == "mig":
            gpu = gpu["mig_devices"][handle[2]]
        if self.gpus[handle[1]].get("lost"):
            raise _error(real.NVML_ERROR_GPU_IS_LOST)
        value = gpu[key]
        if isinstance(value, Err):
            raise _error(value.code)
        return value

    def nvmlDeviceGetName(self, h):
        return self._get(h, "name")

    def nvmlDeviceGetUUID(self, h):
        return self._get(h, "uuid")

    def nvmlDeviceGetPciInfo(self, h):
        info = real.nvmlPciInfo_t()
        info.busId = self._get(h, "bus_id").encode()
        return info

    def nvmlDeviceGetMemoryInfo(self, h):
        total, used, free = self._get(h, "memory")
        info = real.c_nvmlMemory_t()
        info.total, info.used, info.free = total, used, free
        return info

    def nvmlDeviceGetPersistenceMode(self, h):
        return self._get(h, "persistence")

    def nvmlDeviceGetMigMode(self, h):
        return list(self._get(h, "mig"))

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, slot):
        devices = self.gpus[h[1]]["mig_devices"]
        if slot >= len(devices) or devices[slot] is None:
            raise _error(real.NVML_ERROR_NOT_FOUND)
        return ("mig", h[1], slot)

    def nvmlDeviceGetGpuInstanceId(self, h):
        return self._get(h, "gpu_instance_id")

    def nvmlDeviceGetEccMode(self, h):
        return list(self._get(h, "ecc"))

    def nvmlDeviceGetTotalEccErrors(self, h, error_type, counter):
        assert error_type == real.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        return self._get(h, "ecc_errors")[counter]

    def nvmlDeviceGetComputeMode(self, h):
        return self._get(h, "compute_mode")

    def nvmlDeviceGetCudaComputeCapability(self, h):
        return tuple(self._get(h, "capability"))

    def nvmlDeviceGetTemperatureV(self, h, sensor):
        assert sensor == real.NVML_TEMPERATURE_GPU
        return self._get(h, "temperature")

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._get(h, "temperature")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._get(h, "power_mw")

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._get(h, "clock_events")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h):
        return self._get(h, "clock_events")

    def nvmlDeviceGetRemappedRows(self, h):
        return tuple(self._get(h, "remapped_rows"))

    def nvmlDeviceGetRetiredPages(self, h, cause):
        return list(self._get(h, "retired_pages")[cause])

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h):
        return self._get(h, "retired_pages")["pending"]

    def nvmlDeviceGetNvLinkState(self, h, link):
        links = self._get(h, "nvlink")
        if link >= len(links):
            raise _error(real.NVML_ERROR_INVALID_ARGUMENT)
        return links[link]

    def nvmlDeviceGetGpuFabricInfoV(self, h, info_ref):
        fabric = self._get(h, "fabric")
        info = info_ref._obj  # a ctypes byref() of the real binding's structure
        assert info.version in (real.nvmlGpuFabricInfo_v2, real.nvmlGpuFabricInfo_v3), "struct version not set"
        info.state, info.status, info.cliqueId = fabric["state"], fabric["status"], fabric["clique"]

    def nvmlDeviceGetGpuFabricInfo(self, h, info_ref):
        fabric = self._get(h, "fabric")
        info = info_ref._obj
        info.state, info.status, info.cliqueId = fabric["state"], fabric["status"], fabric["clique"]
