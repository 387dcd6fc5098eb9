"""module_utils/nvml: reads, "not supported" handling and every error mapping, over the FakeNVML test double."""

import os
import sys

import pynvml as real
import pytest
from ansible_collections.gpunode.nvidia.plugins.module_utils import interpreters, nvml

from ... import hosts
from ...conftest import FIXTURES
from ...fake_nvml import Err, FakeNVML, h100, hgx_gpu

LAB_NODE = os.path.join(FIXTURES, "hosts", "lab-node-bookworm")


# ------------------------------------------------------------------ reads


def test_h100_machine_reads_as_on_the_real_gpu():
    lib = FakeNVML([h100(0)])
    info = nvml.read_all(lib, LAB_NODE)
    assert info["driver_version"] == "580.159.04"
    assert info["cuda_driver_version"] == "13.0"
    assert info["nvml_version"] == "13.580.159.04"
    assert info["gpu_count"] == 1
    gpu = info["gpus"][0]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["pci_bus_id"] == "00000000:18:00.0"
    assert gpu["memory"] == {"total_mib": 81559, "used_mib": 619, "free_mib": 80939}
    assert gpu["persistence_mode"] is True
    assert gpu["mig"] == {"current": False, "pending": False, "devices": []}
    assert gpu["ecc"] == {"current": True, "pending": True, "volatile_uncorrected": 0, "aggregate_uncorrected": 0}
    assert gpu["compute_mode"] == "default" and gpu["compute_capability"] == "9.0"
    assert gpu["temperature_c"] == 31 and gpu["power_w"] == 69.9
    assert gpu["clock_event_reasons"] == {"mask": 1, "active": ["gpu_idle"]}
    assert gpu["remapped_rows"] == {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False}
    # What the H100 machine said "Not Supported" to is reported as such, not as an error.
    assert gpu["not_supported"] == ["retired_pages", "nvlink", "fabric"]
    assert gpu["retired_pages"] is None and gpu["nvlink"] is None and gpu["fabric"] is None
    assert gpu["errors"] == {}
    assert lib.initialized == 0, "the session is shut down"


def test_hgx_gpu_nvlink_fabric_and_mig_devices():
    mig_devices = [
        {"uuid": "MIG-aaaa", "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "memory": (40 * 2**30, 0, 0), "gpu_instance_id": 1},
        None,  # an empty slot answers NotFound
        {"uuid": "MIG-bbbb", "name": "NVIDIA H100 80GB HBM3 MIG 1g.10gb", "memory": (10 * 2**30, 0, 0), "gpu_instance_id": Err(real.NVML_ERROR_NOT_SUPPORTED)},
    ]
    gpu = hgx_gpu(1, mig=[1, 1], mig_devices=mig_devices, nvlink=[1] * 16 + [0, 0], clock_events=0x4 | 0x40)
    info = nvml.read_all(FakeNVML([gpu]), LAB_NODE)
    read = info["gpus"][0]
    assert read["nvlink"] == {"links": 18, "active": 16, "inactive_links": [16, 17]}
    assert read["fabric"]["state"] == "completed" and read["fabric"]["status"] == "SUCCESS"
    assert read["fabric"]["clique_id"] == 32766
    assert read["fabric"]["cluster_uuid"] == "00000000-0000-0000-0000-000000000000"
    assert read["mig"]["current"] is True
    assert [d["uuid"] for d in read["mig"]["devices"]] == ["MIG-aaaa", "MIG-bbbb"]
    assert read["mig"]["devices"][0]["memory_total_mib"] == 40960
    assert read["mig"]["devices"][1]["gpu_instance_id"] is None
    assert read["clock_event_reasons"]["active"] == ["sw_power_cap", "hw_thermal_slowdown"]


def test_fabric_failure_status_is_named():
    gpu = hgx_gpu(0, fabric={"state": 3, "status": real.NVML_ERROR_NOT_READY, "clique": 0})
    read = nvml.read_all(FakeNVML([gpu]), LAB_NODE)["gpus"][0]
    assert read["fabric"]["status"] == "NOT_READY"


def test_older_binding_without_new_functions_falls_back():
    # nvidia-ml-py before 12.535 lacks TemperatureV, ClocksEventReasons, CudaDriverVersion_v2, GpuFabricInfoV.
    missing = ["nvmlDeviceGetTemperatureV", "nvmlDeviceGetCurrentClocksEventReasons",
               "nvmlSystemGetCudaDriverVersion_v2", "nvmlDeviceGetGpuFabricInfoV", "nvmlSystemGetNVMLVersion"]
    lib = FakeNVML([hgx_gpu(0, temperature=44, clock_events=0x8)], missing=missing)
    assert getattr(lib, "nvmlDeviceGetTemperatureV", None) is None
    info = nvml.read_all(lib, LAB_NODE)
    gpu = info["gpus"][0]
    assert gpu["temperature_c"] == 44
    assert gpu["clock_event_reasons"]["active"] == ["hw_slowdown"]
    assert gpu["fabric"]["state"] == "completed"
    assert info["cuda_driver_version"] == "13.0"
    assert info["nvml_version"] is None
    assert "nvmlDeviceGetTemperature" in lib.calls and "nvmlDeviceGetCurrentClocksThrottleReasons" in lib.calls


def test_older_driver_function_not_found_falls_back_or_is_not_supported():
    lacks = ["nvmlDeviceGetTemperatureV", "nvmlDeviceGetRemappedRows", "nvmlDeviceGetGpuFabricInfoV", "nvmlDeviceGetGpuFabricInfo"]
    gpu = nvml.read_all(FakeNVML([h100(0, temperature=50)], driver_lacks=lacks), LAB_NODE)["gpus"][0]
    assert gpu["temperature_c"] == 50
    assert gpu["remapped_rows"] is None
    assert "remapped_rows" in gpu["not_supported"] and "fabric" in gpu["not_supported"]
    assert gpu["errors"] == {}


def test_binding_without_a_function_at_all_is_not_supported():
    gpu = nvml.read_all(FakeNVML([h100(0)], missing=["nvmlDeviceGetRemappedRows", "nvmlDeviceGetMigMode"]), LAB_NODE)["gpus"][0]
    assert gpu["remapped_rows"] is None and gpu["mig"] is None
    assert {"remapped_rows", "mig"} <= set(gpu["not_supported"])


def test_unsupported_ecc_and_mig_on_a_consumer_gpu():
    gpu = h100(0, name="NVIDIA GeForce RTX 4090", ecc=Err(real.NVML_ERROR_NOT_SUPPORTED), mig=Err(real.NVML_ERROR_NOT_SUPPORTED),
               remapped_rows=Err(real.NVML_ERROR_NOT_SUPPORTED), power_mw=Err(real.NVML_ERROR_NOT_SUPPORTED))
    read = nvml.read_all(FakeNVML([gpu]), LAB_NODE)["gpus"][0]
    assert read["ecc"] is None and read["mig"] is None and read["power_w"] is None
    assert read["not_supported"] == ["mig", "ecc", "power_w", "remapped_rows", "retired_pages", "nvlink", "fabric"]


def test_ecc_counters_unsupported_keep_the_mode():
    gpu = h100(0, ecc_errors=Err(real.NVML_ERROR_NOT_SUPPORTED))
    read = nvml.read_all(FakeNVML([gpu]), LAB_NODE)["gpus"][0]
    assert read["ecc"]["current"] is True and read["ecc"]["volatile_uncorrected"] is None


def test_pre_ampere_gpu_with_retired_pages():
    gpu = h100(0, name="Tesla V100-SXM2-32GB", remapped_rows=Err(real.NVML_ERROR_NOT_SUPPORTED),
               retired_pages={0: [0x1000, 0x2000], 1: [0x3000], "pending": 1})
    read = nvml.read_all(FakeNVML([gpu]), LAB_NODE)["gpus"][0]
    assert read["retired_pages"] == {"single_bit_ecc": 2, "double_bit_ecc": 1, "pending": True}


def test_cuda_version_text():
    assert nvml.cuda_version_text(12080) == "12.8"
    assert nvml.cuda_version_text(13000) == "13.0"
    assert nvml.cuda_version_text(11040) == "11.4"
    assert nvml.cuda_version_text(None) is None
    assert nvml.version_tuple("580.159.04") == (580, 159, 4)


# ----------------------------------------------------------- error mapping


def init_failure(code, root):
    with pytest.raises(nvml.NvmlFailure) as exc:
        nvml.read_all(FakeNVML([h100(0)], init_error=code), str(root))
    return exc.value


def test_library_not_found_on_a_gpu_less_node():
    failure = init_failure(real.NVML_ERROR_LIBRARY_NOT_FOUND, LAB_NODE)
    assert failure.name == "LIBRARY_NOT_FOUND"
    assert "libnvidia-ml.so.1" in failure.message and "libnvidia-ml1" in failure.message
    assert "no NVIDIA GPU on the PCI bus" in failure.message


def test_library_not_found_on_a_gpu_node(tmp_path):
    failure = init_failure(real.NVML_ERROR_LIBRARY_NOT_FOUND, hosts.hgx_h100(tmp_path))
    assert "gpunode.nvidia.driver" in failure.message
    assert "no NVIDIA GPU" not in failure.message


def test_driver_not_loaded_without_gpu():
    failure = init_failure(real.NVML_ERROR_DRIVER_NOT_LOADED, LAB_NODE)
    assert failure.name == "DRIVER_NOT_LOADED"
    assert failure.message.startswith("NVIDIA driver not loaded")
    assert "no NVIDIA GPU on the PCI bus" in failure.message


def test_driver_not_loaded_nouveau_and_secure_boot(tmp_path, monkeypatch):
    root = hosts.workstation_nouveau(tmp_path)
    monkeypatch.setattr(nvml.host, "kernel_release", lambda: "5.14.0-427.el9.x86_64")
    message = init_failure(real.NVML_ERROR_DRIVER_NOT_LOADED, root).message
    assert "nouveau is loaded" in message and "blacklist" in message
    assert "Secure Boot is on" in message and "MOK" in message
    assert "reboot" in message


def test_driver_not_loaded_module_built_for_another_kernel(tmp_path, monkeypatch):
    root = hosts.workstation_nouveau(tmp_path)
    monkeypatch.setattr(nvml.host, "kernel_release", lambda: "5.14.0-503.el9.x86_64")
    message = init_failure(real.NVML_ERROR_DRIVER_NOT_LOADED, root).message
    assert "installed for kernel(s) 5.14.0-427.el9.x86_64 but the running kernel is 5.14.0-503.el9.x86_64" in message
    assert "Secure Boot" not in message


def test_driver_not_loaded_reboot_pending(tmp_path):
    hosts.pci(tmp_path, "0000:18:00.0", hosts.H100_SXM)
    hosts.write(tmp_path, "proc/modules", "ext4 1 0 - Live 0x0\n")
    hosts.write(tmp_path, "lib/modules/6.8.0-87-generic/updates/dkms/nvidia.ko.zst")
    causes = nvml.driver_not_loaded_causes(str(tmp_path), kernel="6.8.0-87-generic")
    assert causes == ["nvidia.ko is installed for the running kernel 6.8.0-87-generic but not loaded: reboot (a reboot is pending) or `modprobe nvidia`"]


def test_driver_not_loaded_nothing_installed(tmp_path):
    hosts.pci(tmp_path, "0000:18:00.0", hosts.H100_SXM)
    causes = nvml.driver_not_loaded_causes(str(tmp_path), kernel="6.8.0-87-generic")
    assert causes == ["no nvidia kernel module is installed for any kernel: run the gpunode.nvidia.driver role"]


def test_version_mismatch_finds_debians_library_behind_alternatives(tmp_path):
    root = hosts.gpu_machine_h100(tmp_path)
    hosts.write(root, "usr/lib/x86_64-linux-gnu/nvidia/current/libnvidia-ml.so.550.163.01")
    assert "(550.163.01)" in init_failure(real.NVML_ERROR_LIB_RM_VERSION_MISMATCH, root).message


def test_version_mismatch_names_both_versions(tmp_path):
    root = hosts.hgx_h100(tmp_path)
    hosts.write(root, "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.172.08")
    failure = init_failure(real.NVML_ERROR_LIB_RM_VERSION_MISMATCH, root)
    assert failure.name == "LIB_RM_VERSION_MISMATCH"
    assert "(580.172.08)" in failure.message and "(580.159.04)" in failure.message
    assert "Reboot" in failure.message and "held" in failure.message


@pytest.mark.parametrize(
    "code, name, words",
    [
        (real.NVML_ERROR_NO_PERMISSION, "NO_PERMISSION", ["become: true", "/dev/nvidiactl"]),
        (real.NVML_ERROR_GPU_IS_LOST, "GPU_IS_LOST", ["fell off the bus", "nvidia-smi -r", "reboot"]),
        (real.NVML_ERROR_RESET_REQUIRED, "RESET_REQUIRED", ["nvidia-smi -r"]),
        (real.NVML_ERROR_CORRUPTED_INFOROM, "CORRUPTED_INFOROM", ["infoROM", "vendor"]),
        (real.NVML_ERROR_INSUFFICIENT_POWER, "INSUFFICIENT_POWER", ["power cables"]),
        (real.NVML_ERROR_IRQ_ISSUE, "IRQ_ISSUE", ["interrupt", "dmesg"]),
        (real.NVML_ERROR_TIMEOUT, "TIMEOUT", ["timed out", "Xid"]),
        (real.NVML_ERROR_OPERATING_SYSTEM, "OPERATING_SYSTEM", ["seccomp", "/dev/nvidia*"]),
        (real.NVML_ERROR_UNKNOWN, "UNKNOWN", ["create-dev-char-symlinks"]),
        (real.NVML_ERROR_IN_USE, "IN_USE", ["NVML error IN_USE"]),
    ],
)
def test_every_init_error_is_explained(code, name, words):
    failure = init_failure(code, LAB_NODE)
    assert failure.name == name
    for word in words:
        assert word in failure.message


def test_error_codes_match_the_real_binding():
    # The fallback table must agree with the binding wherever the binding names the code.
    for name, code in nvml.ERROR_CODES.items():
        assert getattr(real, "NVML_ERROR_" + name) == code, name


def test_explain_a_binding_without_a_code_name():
    class OldBinding(object):
        NVML_ERROR_NOT_SUPPORTED = 3

    class OldError(Exception):
        value = 18

    assert nvml.error_name(OldBinding, 18) == "LIB_RM_VERSION_MISMATCH"
    assert nvml.error_name(OldBinding, 4242) == "CODE_4242"
    assert nvml.explain(OldBinding, ValueError("x"))[0] == "PYTHON_ERROR"


def test_a_lost_gpu_is_an_error_of_that_gpu_only():
    info = nvml.read_all(FakeNVML([h100(0), h100(1, lost=True)]), LAB_NODE)
    good, lost = info["gpus"]
    assert good["errors"] == {}
    assert list(lost["errors"]) == ["name"]
    assert lost["errors"]["name"].startswith("GPU_IS_LOST: GPU is lost")


def test_a_gpu_whose_handle_cannot_be_taken():
    info = nvml.read_all(FakeNVML([h100(0, handle=Err(real.NVML_ERROR_NO_PERMISSION))]), LAB_NODE)
    assert info["gpus"][0]["errors"]["handle"].startswith("NO_PERMISSION")


def test_a_field_error_is_kept_and_the_rest_read():
    info = nvml.read_all(FakeNVML([h100(0, power_mw=Err(real.NVML_ERROR_NO_PERMISSION))]), LAB_NODE)
    gpu = info["gpus"][0]
    assert list(gpu["errors"]) == ["power_w"]
    assert gpu["temperature_c"] == 31 and gpu["remapped_rows"] is not None


def test_failure_after_init_shuts_nvml_down():
    lib = FakeNVML([h100(0)], driver_lacks=["nvmlSystemGetDriverVersion"])
    with pytest.raises(nvml.NvmlFailure) as exc:
        nvml.read_all(lib, LAB_NODE)
    assert exc.value.name == "FUNCTION_NOT_FOUND"
    assert lib.initialized == 0


# ------------------------------------------------------ binding and respawn


class FakeModule(object):
    """Stands in for AnsibleModule: fail_json records instead of exiting."""

    def __init__(self):
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs


def test_load_uses_the_binding_when_importable(monkeypatch):
    fake = FakeNVML()
    monkeypatch.setattr(nvml, "import_pynvml", lambda: (fake, None))
    assert nvml.load_pynvml(FakeModule()) is fake


def test_load_respawns_under_the_first_interpreter_that_has_it(monkeypatch):
    monkeypatch.setattr(nvml, "import_pynvml", lambda: (None, "ImportError: No module named 'pynvml'"))
    monkeypatch.setattr(interpreters, "has_respawned", lambda: False)
    probed, respawned = [], []
    monkeypatch.setattr(interpreters, "probe_interpreters_for_module", lambda paths, name: probed.append((paths, name)) or paths[0])

    def respawn(path):
        respawned.append(path)
        raise SystemExit(0)

    monkeypatch.setattr(interpreters, "respawn_module", respawn)
    with pytest.raises(SystemExit):
        nvml.load_pynvml(FakeModule(), ["/srv/venv/bin/python3", sys.executable])
    paths, name = probed[0]
    assert name == "pynvml"
    assert paths[0] == "/srv/venv/bin/python3" and paths[1] == "/opt/gpunode/venv/bin/python3"
    assert sys.executable not in paths
    assert respawned == ["/srv/venv/bin/python3"]


def test_load_fails_with_install_steps_when_no_interpreter_has_it(monkeypatch):
    monkeypatch.setattr(nvml, "import_pynvml", lambda: (None, "ImportError"))
    monkeypatch.setattr(interpreters, "has_respawned", lambda: False)
    monkeypatch.setattr(interpreters, "probe_interpreters_for_module", lambda paths, name: None)
    monkeypatch.setattr(interpreters, "respawn_module", lambda path: pytest.fail("must not respawn"))
    module = FakeModule()
    nvml.load_pynvml(module)
    assert module.failed["nvml_error"] == "BINDING_MISSING"
    assert "Failed to import the required Python library (nvidia-ml-py (import pynvml))" in module.failed["msg"]
    assert "driver_nvml_python" in module.failed["msg"] and "pip install nvidia-ml-py" in module.failed["msg"]
    assert module.failed["exception"] == "ImportError"


def test_load_does_not_respawn_twice(monkeypatch):
    monkeypatch.setattr(nvml, "import_pynvml", lambda: (None, "ImportError"))
    monkeypatch.setattr(interpreters, "has_respawned", lambda: True)
    monkeypatch.setattr(interpreters, "probe_interpreters_for_module", lambda paths, name: pytest.fail("must not probe"))
    module = FakeModule()
    nvml.load_pynvml(module)
    assert module.failed["nvml_error"] == "BINDING_MISSING"
