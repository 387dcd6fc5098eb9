# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CUDA for the modules: a vector add on every GPU through the driver API, and what its errors mean.

The workload, like the GPU Operator's cuda-validation: on each GPU retain the
primary context, load a PTX kernel (the driver's JIT compiles it, so no CUDA
toolkit is needed on the node), allocate, copy in, launch, copy back, compare.
It talks to the node's ``libcuda.so.1`` through NVIDIA's own bindings
(PyPI ``cuda-bindings``, module ``cuda.bindings.driver``), which the driver
role installs beside nvidia-ml-py; ``api`` is that module, or a test double
with the same calls (tests/unit).

No Ansible import here, on purpose: the cuda_workload module copies this file
into the workload image and runs it there as a script (``main``), so the same
code proves the container runtime injects the driver's CUDA library.
Node code: keep the syntax Python 3.6 can read.
"""

from __future__ import absolute_import, division, print_function

import ctypes
import json
import re
import sys
import time

# vector_add(a, b, c, n): c[i] = a[i] + b[i]. PTX ISA 6.0 for sm_50: every
# driver branch still supported reads it and compiles it for its GPUs.
PTX = b"""
.version 6.0
.target sm_50
.address_size 64

.visible .entry vector_add(
    .param .u64 param_a,
    .param .u64 param_b,
    .param .u64 param_c,
    .param .u32 param_n
)
{
    .reg .pred %p<2>;
    .reg .f32 %f<4>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<8>;

    ld.param.u64 %rd1, [param_a];
    ld.param.u64 %rd2, [param_b];
    ld.param.u64 %rd3, [param_c];
    ld.param.u32 %r1, [param_n];
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra DONE;
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mul.wide.u32 %rd4, %r5, 4;
    add.s64 %rd5, %rd1, %rd4;
    add.s64 %rd6, %rd2, %rd4;
    add.s64 %rd7, %rd3, %rd4;
    ld.global.f32 %f1, [%rd5];
    ld.global.f32 %f2, [%rd6];
    add.f32 %f3, %f1, %f2;
    st.global.f32 [%rd7], %f3;
DONE:
    ret;
}
"""
KERNEL = b"vector_add"
THREADS = 256
DEFAULT_ELEMENTS = 1 << 20
LIBRARY_NOT_FOUND = "LIBRARY_NOT_FOUND"
BINDING_MISSING = "BINDING_MISSING"
PROHIBITED = "COMPUTE_MODE_PROHIBITED"
RESULT_MISMATCH = "RESULT_MISMATCH"

# The oldest Linux driver branch whose CUDA driver supports each CUDA version
# (NVIDIA's CUDA toolkit release notes, "Toolkit Driver Version", GA releases).
MIN_BRANCH = (
    ((11, 0), 450), ((11, 1), 455), ((11, 2), 460), ((11, 3), 465), ((11, 4), 470), ((11, 5), 495),
    ((11, 6), 510), ((11, 7), 515), ((11, 8), 520), ((12, 0), 525), ((12, 1), 530), ((12, 2), 535),
    ((12, 3), 545), ((12, 4), 550), ((12, 5), 555), ((12, 6), 560), ((12, 8), 570), ((12, 9), 575),
    ((13, 0), 580), ((13, 1), 590),
)

_COMPAT = "the CUDA forward compatibility package (cuda-compat, data-center GPUs only)"
# What to do, by CUresult name: the errors a node really shows, the first in each group the usual one.
ADVICE = {
    "CUDA_ERROR_NO_DEVICE": (
        "no CUDA device is visible: check `nvidia-smi -L` and CUDA_VISIBLE_DEVICES, and that a GPU in MIG mode has an instance"
        " (`nvidia-smi mig -lgi`); in a container the runtime did not pass the GPUs in (NVIDIA_VISIBLE_DEVICES or a CDI"
        " device, and the nvidia runtime for this container)"
    ),
    "CUDA_ERROR_INVALID_DEVICE": (
        "this GPU cannot be used: its index is out of range for CUDA_VISIBLE_DEVICES, or MIG is on and no MIG device"
        " was created on it (`nvidia-smi mig -lgi`)"
    ),
    "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH": (
        "libcuda.so.1 and the loaded kernel module are from different drivers: usually %s in the loader path on a"
        " driver it does not support, or a driver upgraded without a reboot; remove the compat libraries from the"
        " loader path (ld.so.conf.d, LD_LIBRARY_PATH) or reboot" % _COMPAT
    ),
    "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE": (
        "%s is in use but this GPU does not support it: install a driver branch that supports the CUDA version"
        " natively and remove the compat libraries from the loader path" % _COMPAT
    ),
    "CUDA_ERROR_ECC_UNCORRECTABLE": (
        "an uncorrectable ECC error on this GPU: drain it, read `nvidia-smi -q -d ECC,ROW_REMAPPER`, reset it"
        " (`nvidia-smi -r -i <index>`) or reboot; if it comes back, the GPU needs service"
    ),
    "CUDA_ERROR_LAUNCH_FAILED": (
        "the kernel faulted on the GPU: read `dmesg | grep -i xid`, reset the GPU (`nvidia-smi -r -i <index>`) or reboot;"
        " a fault that repeats on this GPU only is the hardware"
    ),
    "CUDA_ERROR_ILLEGAL_ADDRESS": "the GPU faulted (illegal address): read `dmesg | grep -i xid`; reset the GPU or reboot",
    "CUDA_ERROR_HARDWARE_STACK_ERROR": "the GPU faulted (hardware stack error): read `dmesg | grep -i xid`; reset the GPU or reboot",
    "CUDA_ERROR_ILLEGAL_INSTRUCTION": "the GPU faulted (illegal instruction): read `dmesg | grep -i xid`; reset the GPU or reboot",
    "CUDA_ERROR_LAUNCH_TIMEOUT": "the kernel ran into the watchdog (a display is attached to this GPU?): use a GPU without a display",
    "CUDA_ERROR_NVLINK_UNCORRECTABLE": "an uncorrectable NVLink error: read `nvidia-smi nvlink -e` and dmesg; reset the GPUs or reboot",
    "CUDA_ERROR_SYSTEM_NOT_READY": (
        "the system is not ready for CUDA: on NVSwitch systems Fabric Manager is not running or the GPU's fabric"
        " registration is not done (`systemctl status nvidia-fabricmanager`, `nvidia-smi -q | grep -A3 Fabric`)"
    ),
    "CUDA_ERROR_DEVICE_UNAVAILABLE": (
        "the GPU is busy or unavailable: compute mode exclusive-process with another process on it, or prohibited"
        " (`nvidia-smi -q -d COMPUTE`)"
    ),
    "CUDA_ERROR_OUT_OF_MEMORY": "the GPU's memory is full: see what runs on it with `nvidia-smi`",
    "CUDA_ERROR_STUB_LIBRARY": (
        "the libcuda.so.1 loaded is the CUDA toolkit's stub (lib64/stubs), not the driver's: remove the stubs"
        " directory from the loader path (LD_LIBRARY_PATH, ld.so.conf.d)"
    ),
    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION": "the driver's JIT compiler is older than the kernel's PTX: upgrade the driver",
    "CUDA_ERROR_JIT_COMPILER_NOT_FOUND": (
        "the driver's PTX JIT compiler (libnvidia-ptxjitcompiler.so.1) is missing: install the driver's compute"
        " libraries; in a container, NVIDIA_DRIVER_CAPABILITIES must include compute"
    ),
    "CUDA_ERROR_INVALID_PTX": "the driver's JIT rejected the kernel: a driver or GPU newer than sm_50 PTX allows, or a damaged driver install",
    "CUDA_ERROR_NO_BINARY_FOR_GPU": "the driver could not compile the kernel for this GPU: the driver is too old for the GPU",
    "CUDA_ERROR_OPERATING_SYSTEM": (
        "the operating system refused a driver call: device cgroup rules, SELinux or the mode of /dev/nvidia* (inside"
        " a container: the runtime did not allow the devices)"
    ),
    "CUDA_ERROR_NOT_PERMITTED": "not permitted: run as root or fix the mode of /dev/nvidia*",
    "CUDA_ERROR_NOT_INITIALIZED": "CUDA was not initialised (cuInit failed earlier)",
    "CUDA_ERROR_UNKNOWN": (
        "CUDA unknown error: inside a container usually lost device access after a `systemctl daemon-reload` (run"
        " `nvidia-ctk system create-dev-char-symlinks --create-all` on the host); on the host read dmesg"
    ),
    LIBRARY_NOT_FOUND: (
        "libcuda.so.1, the driver's CUDA library, cannot be loaded: install it (Debian libcuda1, Ubuntu"
        " libnvidia-compute-<branch>, EL nvidia-driver-cuda-libs) and run ldconfig; in a container the runtime did not"
        " inject it (NVIDIA_DRIVER_CAPABILITIES must include compute, and the container must run through the nvidia runtime)"
    ),
    PROHIBITED: "compute mode is Prohibited on this GPU: no CUDA context can be made; `nvidia-smi -i <index> -c DEFAULT`",
    RESULT_MISMATCH: (
        "the kernel ran but returned wrong sums: a faulty GPU or memory; drain it, read `nvidia-smi -q -d ECC,ROW_REMAPPER`"
        " and dmesg, and run the vendor's diagnostics (`dcgmi diag -r 3`)"
    ),
}


class CudaFailure(Exception):
    """A failed driver call: the CUresult name, the call and what to do."""

    def __init__(self, name, call, advice=None):
        self.name = name
        self.call = call
        self.advice = advice or ADVICE.get(name) or "see the CUDA driver API documentation for %s" % name
        Exception.__init__(self, "%s in %s: %s" % (name, call, self.advice))


def version_text(value):
    """cuDriverGetVersion's 12080 -> '12.8'."""
    if value is None:
        return None
    return "%d.%d" % (value // 1000, (value % 1000) // 10)


def version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", text or ""))


def min_branch(cuda):
    """The oldest driver branch that supports CUDA ``cuda`` ('13.0'); None when newer than the table."""
    want = version_tuple(cuda)[:2]
    for version, branch in MIN_BRANCH:
        if version >= want:
            return branch
    return None


def cuda_version_problem(have, want):
    """None when the driver's CUDA ``have`` is at least ``want``, else the message a workload's owner needs."""
    if not want:
        return None
    if have is None:
        return "the driver does not report its CUDA version; the workload needs CUDA %s" % want
    if version_tuple(have)[:2] >= version_tuple(want)[:2]:
        return None
    branch = min_branch(want)
    upgrade = "a driver branch >= %d" % branch if branch else "a driver newer than branch %d" % MIN_BRANCH[-1][1]
    return "the driver supports CUDA %s; the workload needs %s: upgrade the driver to %s or use %s" % (have, want, upgrade, _COMPAT)


def _name(api, err):
    name = getattr(err, "name", None)
    if name:
        return name
    try:
        return "CUDA_ERROR_CODE_%d" % int(err)
    except (TypeError, ValueError):
        return str(err)


def _call(api, call, *args):
    """api.<call>(*args) -> its values after the CUresult; raises CudaFailure unless CUDA_SUCCESS."""
    function = getattr(api, call)
    try:
        result = function(*args)
    except Exception as exc:  # noqa: BLE001 - a Python error must become a verdict, never a traceback
        # cuda.pathfinder raises DynamicLibNotFoundError (an OSError on older releases) when libcuda.so.1 cannot be loaded.
        if type(exc).__name__.endswith("NotFoundError") or isinstance(exc, OSError):
            raise CudaFailure(LIBRARY_NOT_FOUND, call, "%s (%s)" % (ADVICE[LIBRARY_NOT_FOUND], exc)) from None
        raise CudaFailure("PYTHON_ERROR", call, "%s: %s" % (type(exc).__name__, exc)) from None
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        raise CudaFailure(_name(api, err), call)
    if len(values) == 1:
        return values[0]
    return values


def _inputs(elements):
    """Two float vectors whose sums are exact in float32, and those sums."""
    kind = ctypes.c_float * elements
    a = kind(*[float(i % 1024) for i in range(elements)])
    b = kind(*[float((i * 7) % 2048) for i in range(elements)])
    want = [float(i % 1024) + float((i * 7) % 2048) for i in range(elements)]
    return a, b, want


def _device_info(api, index):
    """(device handle, {name, uuid, compute_capability}) of CUDA device ``index``."""
    attr = api.CUdevice_attribute
    dev = _call(api, "cuDeviceGet", index)
    name = _call(api, "cuDeviceGetName", 96, dev)
    info = {"name": name.split(b"\0", 1)[0].decode("utf-8", "replace") if isinstance(name, bytes) else str(name)}
    info["not_supported"] = []
    try:
        raw = _call(api, "cuDeviceGetUuid", dev)
        text = "".join("%02x" % o for o in bytearray(getattr(raw, "bytes", raw)))
        info["uuid"] = "GPU-%s-%s-%s-%s-%s" % (text[:8], text[8:12], text[12:16], text[16:20], text[20:])
    except (AttributeError, TypeError, ValueError, CudaFailure) as exc:
        if isinstance(exc, CudaFailure) and exc.name != "CUDA_ERROR_NOT_SUPPORTED":
            raise
        info["uuid"] = None  # an older binding or driver: a gap in the report, not a failure
        info["not_supported"].append("uuid")
    major = _call(api, "cuDeviceGetAttribute", attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
    minor = _call(api, "cuDeviceGetAttribute", attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
    info["compute_capability"] = "%d.%d" % (major, minor)
    info["compute_mode"] = _call(api, "cuDeviceGetAttribute", attr.CU_DEVICE_ATTRIBUTE_COMPUTE_MODE, dev)
    return dev, info


def _launch(api, dev, elements, steps):
    """Context, module, buffers, kernel, copy back; the result vector. Frees what it made."""
    ctx = _call(api, "cuDevicePrimaryCtxRetain", dev)
    made = []
    try:
        _call(api, "cuCtxSetCurrent", ctx)
        started = time.monotonic()
        # A raw address, the form every cuda-bindings release takes for "Any" pointers (the buffer stays alive here).
        image = ctypes.create_string_buffer(PTX)
        module = _call(api, "cuModuleLoadData", ctypes.addressof(image))
        made.append(("cuModuleUnload", module))
        function = _call(api, "cuModuleGetFunction", module, KERNEL)
        steps["jit_s"] = round(time.monotonic() - started, 4)
        size = elements * 4
        a, b, _want = steps.pop("_inputs")
        buffers = []
        for _unused in range(3):
            buffers.append(_call(api, "cuMemAlloc", size))
            made.append(("cuMemFree", buffers[-1]))
        _call(api, "cuMemcpyHtoD", buffers[0], ctypes.addressof(a), size)
        _call(api, "cuMemcpyHtoD", buffers[1], ctypes.addressof(b), size)
        # kernelParams: an array of pointers to each argument, as cuLaunchKernel takes it.
        values = [ctypes.c_uint64(int(buf)) for buf in buffers] + [ctypes.c_uint32(elements)]
        params = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        blocks = (elements + THREADS - 1) // THREADS
        started = time.monotonic()
        stream = getattr(api, "CUstream", int)(0)  # the default stream
        _call(api, "cuLaunchKernel", function, blocks, 1, 1, THREADS, 1, 1, 0, stream, ctypes.addressof(params), 0)
        _call(api, "cuCtxSynchronize")
        steps["kernel_s"] = round(time.monotonic() - started, 4)
        out = (ctypes.c_float * elements)()
        _call(api, "cuMemcpyDtoH", ctypes.addressof(out), buffers[2], size)
        return out
    finally:
        for call, handle in reversed(made):
            try:
                getattr(api, call)(handle)
            except Exception:  # noqa: BLE001, S110 - cleanup must not hide the result
                pass
        try:
            api.cuDevicePrimaryCtxRelease(dev)
        except Exception:  # noqa: BLE001, S110
            pass


def run_device(api, index, elements=DEFAULT_ELEMENTS):
    """The workload on CUDA device ``index``: {index, passed, elapsed_s, error, message, ...}."""
    result = {"index": index, "passed": False, "name": None, "uuid": None, "error": None, "message": None, "not_supported": []}
    started = time.monotonic()
    try:
        dev, info = _device_info(api, index)
        result.update(info)
        if info["compute_mode"] == int(api.CUcomputemode.CU_COMPUTEMODE_PROHIBITED):
            raise CudaFailure(PROHIBITED, "cuDeviceGetAttribute(COMPUTE_MODE)")
        a, b, want = _inputs(elements)
        steps = {"_inputs": (a, b, want)}
        out = _launch(api, dev, elements, steps)
        result.update(steps)
        wrong = [i for i in range(elements) if out[i] != want[i]]
        if wrong:
            raise CudaFailure(
                RESULT_MISMATCH, "vector_add",
                "%d of %d sums wrong, the first at %d (%r, not %r): %s"
                % (len(wrong), elements, wrong[0], out[wrong[0]], want[wrong[0]], ADVICE[RESULT_MISMATCH]))
        result["passed"] = True
        result["message"] = "vector add of %d floats correct" % elements
    except CudaFailure as failure:
        result["error"] = failure.name
        result["message"] = str(failure)
    result["elapsed_s"] = round(time.monotonic() - started, 4)
    return result


def run_all(api, devices=None, elements=DEFAULT_ELEMENTS):
    """cuInit, the driver's CUDA version and the workload on each device (all when ``devices`` is empty)."""
    report = {"cuda_driver_version": None, "device_count": None, "devices": [], "error": None, "message": None}
    try:
        _call(api, "cuInit", 0)
        report["cuda_driver_version"] = version_text(_call(api, "cuDriverGetVersion"))
        report["device_count"] = _call(api, "cuDeviceGetCount")
    except CudaFailure as failure:
        report["error"] = failure.name
        report["message"] = str(failure)
        return report
    wanted = list(devices) if devices else list(range(report["device_count"]))
    report["devices"] = [run_device(api, index, elements) for index in wanted]
    return report


def import_binding():
    """(cuda.bindings.driver, None) or (None, the ImportError's text)."""
    try:
        from cuda.bindings import driver  # noqa: PLC0415 - the binding is optional until the workload runs
    except ImportError as exc:
        return None, "%s: %s" % (type(exc).__name__, exc)
    return driver, None


def main(argv=None):
    """The workload as a script (in the workload image): prints run_all's report as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    devices, elements = [], DEFAULT_ELEMENTS
    while args:
        flag = args.pop(0)
        if flag == "--sys-path":
            sys.path.insert(0, args.pop(0))
        elif flag == "--device":
            devices.append(int(args.pop(0)))
        elif flag == "--elements":
            elements = int(args.pop(0))
    api, problem = import_binding()
    if api is None:
        report = {"cuda_driver_version": None, "device_count": None, "devices": [], "error": BINDING_MISSING, "message": problem}
    else:
        report = run_all(api, devices, elements)
    report["libcuda"] = loaded_libcuda()
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    return 0


def loaded_libcuda():
    """The file this process mapped as libcuda.so (where the library came from), or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "/libcuda.so" in path:
                    return path
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
