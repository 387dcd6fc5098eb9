# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVML for the modules: finding the binding, reading every GPU, explaining errors.

One place for three things that nvml_info and nvml_check share:
- ``load_pynvml``: import nvidia-ml-py (``pynvml``), respawning the module
  under an interpreter that has it, or failing with ``missing_required_lib``;
- ``read_all``: one NVML session that reads the driver and every GPU, where a
  feature the GPU, driver or binding lacks is recorded as "not supported" and
  never raised;
- ``explain``: an NVML error turned into a message a person can act on, using
  what sysfs/procfs say about the node (nouveau, Secure Boot, module versions).

Modules run on the node's Python, 3.6 and up: keep the syntax that old.
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import re
import traceback
from ctypes import byref

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.gpunode.nvidia.plugins.module_utils import host, interpreters as pythons, sysfs
BINDING = "nvidia-ml-py (import pynvml)"
BINDING_URL = "https://pypi.org/project/nvidia-ml-py/"
INSTALL_HINT = (
    "Install it on the node: the gpunode.nvidia.driver role puts it in a venv whose Python it"
    " publishes as driver_nvml_python (pass that as python_interpreters), or run"
    " `python3 -m venv /opt/gpunode/venv && /opt/gpunode/venv/bin/pip install nvidia-ml-py`."
    " Do not use the old `pynvml` or `nvidia-ml-py3` packages."
)

# NVML return codes (nvml.h). The binding's NVML_ERROR_* constants are used when
# it has them; these numbers are the stable ABI for bindings that predate one.
ERROR_CODES = {
    "UNINITIALIZED": 1,
    "INVALID_ARGUMENT": 2,
    "NOT_SUPPORTED": 3,
    "NO_PERMISSION": 4,
    "NOT_FOUND": 6,
    "INSUFFICIENT_POWER": 8,
    "DRIVER_NOT_LOADED": 9,
    "TIMEOUT": 10,
    "IRQ_ISSUE": 11,
    "LIBRARY_NOT_FOUND": 12,
    "FUNCTION_NOT_FOUND": 13,
    "CORRUPTED_INFOROM": 14,
    "GPU_IS_LOST": 15,
    "RESET_REQUIRED": 16,
    "OPERATING_SYSTEM": 17,
    "LIB_RM_VERSION_MISMATCH": 18,
    "IN_USE": 19,
    "MEMORY": 20,
    "GPU_NOT_FOUND": 28,
    "UNKNOWN": 999,
}

COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}
FABRIC_STATES = {0: "not_supported", 1: "not_started", 2: "in_progress", 3: "completed"}
# nvmlClocksEventReason* bits (the same values as the older ThrottleReason names).
CLOCK_EVENT_REASONS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)
MIB = 1024 * 1024


class NvmlFailure(Exception):
    """An NVML error that stops the read, with its code name and an actionable message."""

    def __init__(self, name, message):
        Exception.__init__(self, message)
        self.name = name
        self.message = message


class _Unsupported(Exception):
    """The GPU, the driver or the binding does not offer this: a skip, never a failure."""


class _Missing(_Unsupported):
    """The binding or the driver lacks this function: an older variant may exist."""


# ---------------------------------------------------------------- the binding


def import_pynvml():
    """(module, None) or (None, traceback text)."""
    try:
        import pynvml  # noqa: PLC0415 - imported where needed so its absence can be handled
    except ImportError:
        return None, traceback.format_exc()
    return pynvml, None


def load_pynvml(module, interpreters=(), failure_result=None):
    """The pynvml module, respawning or failing the module when this Python lacks it.

    ``failure_result(name, message)`` gives the module's fail_json arguments
    (nvml_check reports the failure as its one failed check).
    """
    lib, trace = import_pynvml()
    if lib is not None:
        return lib
    tried = pythons.respawn_for("pynvml", interpreters)
    message = "%s. %s" % (missing_required_lib(BINDING, reason="to talk to the NVIDIA driver", url=BINDING_URL), INSTALL_HINT)
    result = failure_result("BINDING_MISSING", message) if failure_result else {"msg": message, "nvml_error": "BINDING_MISSING"}
    module.fail_json(exception=trace, interpreters_tried=tried, **result)
    return None  # fail_json exits; this is for test doubles that do not


def error_code(lib, name):
    return getattr(lib, "NVML_ERROR_" + name, ERROR_CODES[name])


def error_name(lib, value):
    """NVML_ERROR_<NAME> for a code, from the binding first."""
    for attr in dir(lib):
        if attr.startswith("NVML_ERROR_") and getattr(lib, attr) == value:
            return attr[len("NVML_ERROR_"):]
    for name, code in ERROR_CODES.items():
        if code == value:
            return name
    return "CODE_%s" % value


# ------------------------------------------------------------- explanations


def _library_versions(root):
    """Versions of the libnvidia-ml.so.<version> files installed (the driver userspace)."""
    found = set()
    # Distribution lib dirs, Debian's alternatives dir (nvidia/current) and the GPU machine's /usr/local/nvidia.
    for pattern in ("usr/lib*/libnvidia-ml.so.*.*", "usr/lib*/*/libnvidia-ml.so.*.*", "usr/lib*/*/nvidia/*/libnvidia-ml.so.*.*",
                    "usr/local/nvidia/lib*/libnvidia-ml.so.*.*"):
        for path in glob.glob(sysfs._path(root, pattern)):
            found.add(os.path.basename(path)[len("libnvidia-ml.so."):])
    return sorted(found)


def driver_not_loaded_causes(root="/", kernel=None):
    """Why the nvidia kernel module is not running, most likely first."""
    kernel = kernel or host.kernel_release()
    gpus, _nvswitches = sysfs.nvidia_pci(root)
    loaded, _source = sysfs.kernel_modules(("nvidia", "nouveau"), root)
    installed = host.installed_nvidia_modules(root)
    secure = sysfs.secure_boot(root)
    causes = []
    if not gpus:
        causes.append("no NVIDIA GPU on the PCI bus: there is nothing for the driver to bind (check `lspci -d 10de:`, BIOS, seating)")
    if loaded.get("nouveau"):
        causes.append(
            "nouveau is loaded and holds the GPU: blacklist it (the gpunode.nvidia.driver role does), rebuild the initramfs and reboot"
        )
    if kernel in installed:
        if secure.get("enabled"):
            causes.append(
                "Secure Boot is on and nvidia.ko is installed for the running kernel but not loaded: the kernel likely rejected"
                " an unsigned module (dmesg: 'Key was rejected by service'); sign it with an enrolled MOK key or disable Secure Boot"
            )
        causes.append("nvidia.ko is installed for the running kernel %s but not loaded: reboot (a reboot is pending) or `modprobe nvidia`" % kernel)
    elif installed:
        causes.append(
            "nvidia.ko is installed for kernel(s) %s but the running kernel is %s: reboot into that kernel or build the module"
            " for this one (install its headers and rerun the driver role)" % (", ".join(sorted(installed)), kernel)
        )
    elif gpus:
        causes.append("no nvidia kernel module is installed for any kernel: run the gpunode.nvidia.driver role")
    return causes


def _explain_text(lib, name, err, root, kernel):
    if name == "LIBRARY_NOT_FOUND":
        text = (
            "NVML library not found: libnvidia-ml.so.1, the NVIDIA driver's userspace, is not installed or not in the"
            " loader path. Install the driver (gpunode.nvidia.driver role; Debian package libnvidia-ml1, Ubuntu"
            " libnvidia-compute-<branch>-server, EL nvidia-driver-NVML), then run ldconfig."
        )
        if not sysfs.nvidia_pci(root)[0]:
            text += " Note: no NVIDIA GPU on the PCI bus."
        return text
    if name == "DRIVER_NOT_LOADED":
        causes = driver_not_loaded_causes(root, kernel)
        return "NVIDIA driver not loaded (the nvidia kernel module is not running). " + (
            "; ".join(causes) if causes else "Check `dmesg | grep -i nvrm` and `modprobe nvidia`."
        )
    if name == "LIB_RM_VERSION_MISMATCH":
        running = sysfs.loaded_driver(root)
        libs = _library_versions(root)
        return (
            "driver/library version mismatch: the NVML library (%s) and the loaded kernel module (%s) differ, usually after a"
            " driver upgrade without a reboot. Reboot the node (or stop every GPU user and reload the nvidia modules), and"
            " keep the driver packages held so unattended upgrades cannot split them again."
            % (", ".join(libs) or "version unknown", running["version"] if running else "version unknown")
        )
    if name == "GPU_IS_LOST":
        return (
            "GPU is lost: it fell off the bus (dmesg: Xid 79). Reset it (`nvidia-smi -r -i <index>` with no process on it) or"
            " reboot; if it happens again, check power, cooling and seating, and the card itself."
        )
    if name == "RESET_REQUIRED":
        return "GPU requires a reset: stop the processes on it and run `nvidia-smi -r -i <index>`, or reboot."
    if name == "NO_PERMISSION":
        return (
            "no permission to the NVIDIA device files (/dev/nvidiactl, /dev/nvidia*): run as root (become: true) or fix"
            " their mode/group (NVreg_DeviceFileMode, NVreg_DeviceFileGID)."
        )
    if name == "CORRUPTED_INFOROM":
        return "corrupted infoROM on the GPU: its configuration storage is damaged; contact the vendor (the GPU needs service)."
    if name == "INSUFFICIENT_POWER":
        return "insufficient external power: a GPU's power cables are not connected or not enough; check the cabling."
    if name == "IRQ_ISSUE":
        return "interrupt problem between the kernel and the GPU: check dmesg and the platform's MSI/ACPI settings, then reboot."
    if name == "TIMEOUT":
        return "the driver timed out talking to the GPU: check dmesg for Xid errors; reset the GPU or reboot."
    if name == "OPERATING_SYSTEM":
        return "the operating system blocked the request (seccomp, SELinux or cgroup device rules): allow access to /dev/nvidia*."
    if name == "UNKNOWN":
        return (
            "NVML Unknown Error. Inside a container this is usually lost device access after a systemd daemon-reload: run"
            " `nvidia-ctk system create-dev-char-symlinks --create-all` on the host. On the host, check dmesg."
        )
    if name in ("NOT_SUPPORTED", "FUNCTION_NOT_FOUND"):
        return "not supported by this GPU, driver or binding (%s)" % err
    return "NVML error %s: %s" % (name, err)


def explain(lib, err, root="/", kernel=None):
    """(code name, actionable message) for an NVMLError (or any exception)."""
    value = getattr(err, "value", None)
    if value is None:
        return "PYTHON_ERROR", "%s: %s" % (type(err).__name__, err)
    name = error_name(lib, value)
    return name, _explain_text(lib, name, err, root, kernel)


# ------------------------------------------------------------------ reading


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _call(lib, name, *args):
    """lib.<name>(*args); raises _Missing/_Unsupported for what is not offered."""
    fn = getattr(lib, name, None)
    if fn is None:
        raise _Missing("the binding has no %s" % name)
    try:
        return fn(*args)
    except lib.NVMLError as err:
        if err.value == error_code(lib, "FUNCTION_NOT_FOUND"):
            raise _Missing("the driver has no %s" % name) from None
        if err.value == error_code(lib, "NOT_SUPPORTED"):
            raise _Unsupported(name) from None
        raise


def _first(lib, variants):
    """The first of [(function name, args)] that the binding and driver offer."""
    for name, args in variants:
        try:
            return _call(lib, name, *args)
        except _Missing:
            continue
    raise _Unsupported("none of %s" % ", ".join(v[0] for v in variants))


def cuda_version_text(value):
    """12080 -> '12.8' (NVML encodes major*1000 + minor*10)."""
    if value is None:
        return None
    return "%d.%d" % (value // 1000, (value % 1000) // 10)


def _gpu_fields(lib, handle):
    """(field name, reader) in the order they are read and returned."""

    def const(name, default):
        return getattr(lib, name, default)  # older bindings lack some constants

    unc = const("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)

    def memory():
        info = _call(lib, "nvmlDeviceGetMemoryInfo", handle)
        return {"total_mib": info.total // MIB, "used_mib": info.used // MIB, "free_mib": info.free // MIB}

    def mig():
        current, pending = _call(lib, "nvmlDeviceGetMigMode", handle)
        enable = const("NVML_DEVICE_MIG_ENABLE", 1)
        result = {"current": current == enable, "pending": pending == enable, "devices": []}
        if current == enable:
            result["devices"] = _mig_devices(lib, handle)
        return result

    def ecc():
        current, pending = _call(lib, "nvmlDeviceGetEccMode", handle)
        result = {"current": bool(current), "pending": bool(pending), "volatile_uncorrected": None, "aggregate_uncorrected": None}
        for key, counter in (("volatile_uncorrected", const("NVML_VOLATILE_ECC", 0)), ("aggregate_uncorrected", const("NVML_AGGREGATE_ECC", 1))):
            try:
                result[key] = _call(lib, "nvmlDeviceGetTotalEccErrors", handle, unc, counter)
            except _Unsupported:
                pass
        return result

    def temperature():
        sensor = const("NVML_TEMPERATURE_GPU", 0)
        return _first(lib, [("nvmlDeviceGetTemperatureV", (handle, sensor)), ("nvmlDeviceGetTemperature", (handle, sensor))])

    def clock_events():
        mask = _first(lib, [("nvmlDeviceGetCurrentClocksEventReasons", (handle,)), ("nvmlDeviceGetCurrentClocksThrottleReasons", (handle,))])
        return {"mask": mask, "active": [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]}

    def remapped_rows():
        corr, unc_rows, pending, failure = _call(lib, "nvmlDeviceGetRemappedRows", handle)
        return {"correctable": corr, "uncorrectable": unc_rows, "pending": bool(pending), "failure": bool(failure)}

    def retired_pages():
        result = {
            "single_bit_ecc": len(_call(lib, "nvmlDeviceGetRetiredPages", handle, const("NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS", 0))),
            "double_bit_ecc": len(_call(lib, "nvmlDeviceGetRetiredPages", handle, const("NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR", 1))),
        }
        result["pending"] = bool(_call(lib, "nvmlDeviceGetRetiredPagesPendingStatus", handle))
        return result

    return (
        ("name", lambda: _decode(_call(lib, "nvmlDeviceGetName", handle))),
        ("uuid", lambda: _decode(_call(lib, "nvmlDeviceGetUUID", handle))),
        ("pci_bus_id", lambda: _decode(_call(lib, "nvmlDeviceGetPciInfo", handle).busId)),
        ("memory", memory),
        ("persistence_mode", lambda: _call(lib, "nvmlDeviceGetPersistenceMode", handle) == const("NVML_FEATURE_ENABLED", 1)),
        ("mig", mig),
        ("ecc", ecc),
        ("compute_mode", lambda: COMPUTE_MODES.get(_call(lib, "nvmlDeviceGetComputeMode", handle), "unknown")),
        ("compute_capability", lambda: "%d.%d" % tuple(_call(lib, "nvmlDeviceGetCudaComputeCapability", handle))),
        ("temperature_c", temperature),
        ("power_w", lambda: round(_call(lib, "nvmlDeviceGetPowerUsage", handle) / 1000.0, 1)),
        ("clock_event_reasons", clock_events),
        ("remapped_rows", remapped_rows),
        ("retired_pages", retired_pages),
        ("nvlink", lambda: _nvlink(lib, handle)),
        ("fabric", lambda: _fabric(lib, handle)),
    )


def _mig_devices(lib, handle):
    devices = []
    for slot in range(_call(lib, "nvmlDeviceGetMaxMigDeviceCount", handle)):
        try:
            mig = _call(lib, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        except lib.NVMLError as err:
            if err.value == error_code(lib, "NOT_FOUND"):
                continue  # an empty slot
            raise
        devices.append(_mig_device(lib, mig, slot))
    return devices


def _mig_device(lib, mig, slot):
    device = {"index": slot, "uuid": _decode(_call(lib, "nvmlDeviceGetUUID", mig))}
    for key, reader in (
        ("name", lambda: _decode(_call(lib, "nvmlDeviceGetName", mig))),
        ("memory_total_mib", lambda: _call(lib, "nvmlDeviceGetMemoryInfo", mig).total // MIB),
        ("gpu_instance_id", lambda: _call(lib, "nvmlDeviceGetGpuInstanceId", mig)),
    ):
        try:
            device[key] = reader()
        except _Unsupported:
            device[key] = None
    return device


def _nvlink(lib, handle):
    states = []
    for link in range(getattr(lib, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            states.append(bool(_call(lib, "nvmlDeviceGetNvLinkState", handle, link)))
        except _Unsupported:
            if link == 0:
                raise
            break
        except lib.NVMLError as err:
            if err.value == error_code(lib, "INVALID_ARGUMENT") and link > 0:
                break  # past this GPU's last link
            raise
    return {"links": len(states), "active": sum(states), "inactive_links": [i for i, up in enumerate(states) if not up]}


def _uuid_text(raw):
    text = "".join("%02x" % b for b in bytearray(raw))
    return "-".join((text[:8], text[8:12], text[12:16], text[16:20], text[20:]))


def _fabric(lib, handle):
    """GPU fabric registration (NVSwitch systems): state, status, clique."""
    for func, struct in (
        ("nvmlDeviceGetGpuFabricInfoV", "c_nvmlGpuFabricInfo_v3_t"),
        ("nvmlDeviceGetGpuFabricInfoV", "c_nvmlGpuFabricInfoV_t"),
        ("nvmlDeviceGetGpuFabricInfo", "c_nvmlGpuFabricInfo_t"),
    ):
        if not hasattr(lib, struct):
            continue
        info = getattr(lib, struct)()
        try:
            _call(lib, func, handle, byref(info))
        except _Missing:
            continue
        state = FABRIC_STATES.get(info.state, "unknown")
        if state == "not_supported":
            raise _Unsupported("fabric")
        status = info.status
        return {
            "state": state,
            "status": "SUCCESS" if status == 0 else error_name(lib, status),
            "clique_id": getattr(info, "cliqueId", None),
            "cluster_uuid": _uuid_text(info.clusterUuid) if hasattr(info, "clusterUuid") else None,
        }
    raise _Unsupported("fabric")


def read_gpu(lib, index, root="/"):
    """Everything about GPU ``index``; unsupported fields are null and listed."""
    gpu = {"index": index}
    unsupported, errors = [], {}
    try:
        handle = _call(lib, "nvmlDeviceGetHandleByIndex", index)
    except lib.NVMLError as err:
        errors["handle"] = "%s: %s" % explain(lib, err, root)
        handle = None
    for key, reader in _gpu_fields(lib, handle) if handle is not None else ():
        try:
            gpu[key] = reader()
        except _Unsupported:
            gpu[key] = None
            unsupported.append(key)
        except lib.NVMLError as err:
            gpu[key] = None
            name, message = explain(lib, err, root)
            errors[key] = "%s: %s" % (name, message)
            if name == "GPU_IS_LOST":
                break  # every further read would say the same
    gpu["not_supported"] = unsupported
    gpu["errors"] = errors
    return gpu


def read_all(lib, root="/"):
    """One NVML session: driver, CUDA and NVML versions and every GPU.

    Raises NvmlFailure when NVML cannot start (library missing, driver not
    loaded, version mismatch, no permission) or the GPU list cannot be read.
    """
    try:
        lib.nvmlInit()
    except lib.NVMLError as err:
        raise NvmlFailure(*explain(lib, err, root)) from None
    try:
        info = {"driver_version": _decode(lib.nvmlSystemGetDriverVersion())}
        try:
            cuda = _first(lib, [("nvmlSystemGetCudaDriverVersion_v2", ()), ("nvmlSystemGetCudaDriverVersion", ())])
        except _Unsupported:
            cuda = None
        info["cuda_driver_version"] = cuda_version_text(cuda)
        try:
            info["nvml_version"] = _decode(_call(lib, "nvmlSystemGetNVMLVersion"))
        except _Unsupported:
            info["nvml_version"] = None
        count = lib.nvmlDeviceGetCount()
        info["gpu_count"] = count
        info["gpus"] = [read_gpu(lib, index, root) for index in range(count)]
        return info
    except lib.NVMLError as err:
        raise NvmlFailure(*explain(lib, err, root)) from None
    finally:
        try:
            lib.nvmlShutdown()
        except Exception:  # noqa: BLE001 - a failed shutdown must not hide the result
            pass


def version_tuple(text):
    """'580.159.04' -> (580, 159, 4); non-numeric parts are ignored."""
    return tuple(int(p) for p in re.findall(r"\d+", text or ""))
