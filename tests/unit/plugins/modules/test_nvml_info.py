"""nvml_info through its main(), over the FakeNVML test double (no GPU can be reached here)."""

import os

import pynvml as real
import pytest
from ansible_collections.gpunode.nvidia.plugins.module_utils import interpreters, nvml
from ansible_collections.gpunode.nvidia.plugins.modules import nvml_info

from ...conftest import FIXTURES
from ...fake_nvml import FakeNVML, h100, hgx_gpu
from ...utils import run_module

LAB_NODE = os.path.join(FIXTURES, "hosts", "lab-node-bookworm")


@pytest.fixture
def binding(monkeypatch):
    """Install a FakeNVML as the module's pynvml; returns a setter."""
    monkeypatch.setattr(nvml_info, "ROOT", LAB_NODE)

    def use(fake):
        monkeypatch.setattr(nvml, "import_pynvml", lambda: (fake, None))
        return fake

    return use


def test_reads_every_gpu(binding, capsys):
    binding(FakeNVML([hgx_gpu(i) for i in range(8)]))
    failed, result = run_module(nvml_info.main, {}, capsys)
    assert not failed and result["changed"] is False
    assert result["driver_version"] == "580.159.04" and result["cuda_driver_version"] == "13.0"
    assert result["gpu_count"] == 8
    assert [g["index"] for g in result["gpus"]] == list(range(8))
    assert all(g["fabric"]["state"] == "completed" for g in result["gpus"])
    assert result["gpus"][7]["uuid"].endswith("7")


def test_not_supported_is_not_a_failure(binding, capsys):
    binding(FakeNVML([h100(0)]))
    failed, result = run_module(nvml_info.main, {}, capsys)
    assert not failed
    assert result["gpus"][0]["not_supported"] == ["retired_pages", "nvlink", "fabric"]


def test_check_mode_reads_the_same(binding, capsys):
    binding(FakeNVML([h100(0)]))
    failed, result = run_module(nvml_info.main, {"_ansible_check_mode": True}, capsys)
    assert not failed and result["gpu_count"] == 1


def test_driver_not_loaded_fails_with_the_reason(binding, capsys):
    binding(FakeNVML(init_error=real.NVML_ERROR_DRIVER_NOT_LOADED))
    failed, result = run_module(nvml_info.main, {}, capsys)
    assert failed
    assert result["nvml_error"] == "DRIVER_NOT_LOADED"
    assert "no NVIDIA GPU on the PCI bus" in result["msg"]


def test_missing_binding_fails_with_missing_required_lib(monkeypatch, capsys):
    monkeypatch.setattr(nvml, "import_pynvml", lambda: (None, "Traceback: ImportError"))
    monkeypatch.setattr(interpreters, "probe_interpreters_for_module", lambda paths, name: None)
    failed, result = run_module(nvml_info.main, {"python_interpreters": ["/nonexistent/python3"]}, capsys)
    assert failed and result["nvml_error"] == "BINDING_MISSING"
    assert "Failed to import the required Python library" in result["msg"]
    assert result["interpreters_tried"][0] == "/nonexistent/python3"
