"""nvml_check: every check, passing and failing, over the FakeNVML test double (no GPU can be reached here)."""

import os

import pynvml as real
import pytest
from ansible_collections.gpunode.nvidia.plugins.module_utils import interpreters, nvml
from ansible_collections.gpunode.nvidia.plugins.modules import nvml_check

from ... import hosts
from ...conftest import FIXTURES
from ...fake_nvml import Err, FakeNVML, h100, hgx_gpu
from ...utils import run_module

LAB_NODE = os.path.join(FIXTURES, "hosts", "lab-node-bookworm")


@pytest.fixture
def node(monkeypatch):
    """node(fake, root=LAB_NODE): the module sees ``fake`` as pynvml and ``root`` as /."""

    def use(fake, root=LAB_NODE):
        monkeypatch.setattr(nvml_check, "ROOT", str(root))
        monkeypatch.setattr(nvml, "import_pynvml", lambda: (fake, None))
        return fake

    return use


def checks_of(result, name):
    return [c for c in result["checks"] if c["check"] == name]


def one(result, name, gpu=0):
    found = [c for c in checks_of(result, name) if c["gpu"] == gpu]
    assert len(found) == 1, result["checks"]
    return found[0]


EVERYTHING = {
    "driver_version": "580.159.04",
    "driver_branch": "580",
    "min_cuda_version": "12.8",
    "gpu_count": 1,
    "product_pattern": "H100|H200",
    "persistence_mode": True,
    "mig_mode": "disabled",
    "ecc": True,
}


def test_every_check_passes_on_the_h100_machine(node, capsys):
    node(FakeNVML([h100(0)]))
    failed, result = run_module(nvml_check.main, EVERYTHING, capsys)
    assert not failed, result["msg"]
    assert result["passed"] is True and result["failed_checks"] == []
    names = [c["check"] for c in result["checks"]]
    assert names == ["nvml", "driver_version", "driver_branch", "min_cuda_version", "gpu_count", "readable",
                     "product_pattern", "persistence_mode", "mig_mode", "ecc", "row_remapping", "retired_pages"]
    # The H100 machine has no page retirement (Ampere+) and no NVSwitch: not supported / not checked.
    assert one(result, "retired_pages")["status"] == "not_supported"
    assert checks_of(result, "fabric") == []
    assert result["summary"] == "all 12 checks passed"
    assert result["nvml"]["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"


def test_every_check_fails_and_one_message_names_them_all(node, capsys):
    bad = h100(0, name="NVIDIA A100-SXM4-40GB", persistence=0, mig=[1, 1], ecc=[0, 0], remapped_rows=(0, 2, 1, 0))
    node(FakeNVML([bad], driver="550.163.01", cuda=12040))
    failed, result = run_module(nvml_check.main, dict(EVERYTHING, gpu_count=2), capsys)
    assert failed and result["passed"] is False
    assert result["failed_checks"] == ["driver_version", "driver_branch", "min_cuda_version", "gpu_count", "gpu0 product_pattern",
                                       "gpu0 persistence_mode", "gpu0 mig_mode", "gpu0 ecc", "gpu0 row_remapping"]
    assert result["msg"].startswith("9 of 12 checks failed: driver_version: driver 550.163.01, expected 580.159.04")
    for words in ("branch 550, expected 580", "the driver supports CUDA 12.4; the workload needs 12.8: upgrade the driver to a driver branch >= 570",
                  "NVML sees 1 GPU(s), expected 2",
                  "does not match /H100|H200/", "nvidia-persistenced", "MIG mode is on, expected off", "ECC is off, expected on",
                  "row remap is pending"):
        assert words in result["msg"], words
    assert result["msg"] == result["summary"]


@pytest.mark.parametrize(
    "gpu, params, status, words",
    [
        # MIG
        (h100(0, mig=[1, 1]), {"mig_mode": "enabled"}, "pass", "MIG mode is on"),
        (h100(0, mig=[0, 1]), {"mig_mode": "enabled"}, "fail", "a change to on is pending: reset the GPU"),
        (h100(0, mig=[0, 1]), {"mig_mode": "disabled"}, "fail", "MIG mode is off but on is pending"),
        (h100(0, mig=Err(real.NVML_ERROR_NOT_SUPPORTED)), {"mig_mode": "disabled"}, "not_supported", "not supported"),
        (h100(0, mig=Err(real.NVML_ERROR_NOT_SUPPORTED)), {"mig_mode": "enabled"}, "fail", "MIG mode is not supported on this GPU, expected on"),
        # ECC
        (h100(0, ecc=[1, 1]), {"ecc": True}, "pass", "ECC is on"),
        (h100(0, ecc=[0, 1]), {"ecc": True}, "fail", "reboot the node"),
        (h100(0, ecc=[1, 0]), {"ecc": True}, "fail", "ECC is on but off is pending"),
        (h100(0, ecc=[0, 0]), {"ecc": False}, "pass", "ECC is off"),
        (h100(0, ecc=Err(real.NVML_ERROR_NOT_SUPPORTED)), {"ecc": True}, "fail", "ECC is not supported on this GPU, expected on"),
        (h100(0, ecc=Err(real.NVML_ERROR_NOT_SUPPORTED)), {"ecc": False}, "not_supported", "not supported"),
        # persistence
        (h100(0, persistence=1), {"persistence_mode": True}, "pass", "persistence mode is on"),
        (h100(0, persistence=0), {"persistence_mode": True}, "fail", "persistence mode is off, expected on"),
        (h100(0, persistence=1), {"persistence_mode": False}, "fail", "persistence mode is on, expected off"),
        # product
        (h100(0, name="NVIDIA H200"), {"product_pattern": "H100|H200"}, "pass", "NVIDIA H200 matches"),
        (h100(0, name="Tesla T4"), {"product_pattern": "^NVIDIA"}, "fail", "Tesla T4 does not match"),
    ],
)
def test_per_gpu_expectations(node, capsys, gpu, params, status, words):  # noqa: PLR0917 - pytest fixtures and parameters
    node(FakeNVML([gpu]))
    failed, result = run_module(nvml_check.main, params, capsys)
    check = one(result, list(params)[0])
    assert check["status"] == status
    assert words in check["message"]
    assert failed == (status == "fail")


@pytest.mark.parametrize(
    "rows, status, words",
    [
        ((3, 0, 0, 0), "pass", "no pending remap (3 correctable, 0 uncorrectable remapped)"),
        ((0, 1, 1, 0), "fail", "a row remap is pending: reset the GPU"),
        ((0, 8, 0, 1), "fail", "row remapping FAILED (8 uncorrectable rows)"),
        (Err(real.NVML_ERROR_NOT_SUPPORTED), "not_supported", "before Ampere"),
    ],
)
def test_row_remapping(node, capsys, rows, status, words):
    node(FakeNVML([h100(0, remapped_rows=rows)]))
    _failed, result = run_module(nvml_check.main, {}, capsys)
    check = one(result, "row_remapping")
    assert check["status"] == status and words in check["message"]


@pytest.mark.parametrize(
    "pages, status, words",
    [
        ({0: [1], 1: [], "pending": 0}, "pass", "no pending retirement (1 single-bit, 0 double-bit retired)"),
        ({0: [], 1: [7], "pending": 1}, "fail", "a page retirement is pending: reboot"),
        (Err(real.NVML_ERROR_NOT_SUPPORTED), "not_supported", "Ampere and later"),
    ],
)
def test_retired_pages(node, capsys, pages, status, words):
    node(FakeNVML([h100(0, retired_pages=pages)]))
    _failed, result = run_module(nvml_check.main, {}, capsys)
    check = one(result, "retired_pages")
    assert check["status"] == status and words in check["message"]


def test_memory_health_checks_can_be_turned_off(node, capsys):
    node(FakeNVML([h100(0, remapped_rows=(0, 1, 1, 0))]))
    failed, result = run_module(nvml_check.main, {"row_remapping": False, "retired_pages": False}, capsys)
    assert not failed
    assert [c["check"] for c in result["checks"]] == ["nvml", "readable"]


@pytest.mark.parametrize(
    "fabric, status, words",
    [
        ({"state": 3, "status": 0, "clique": 32766}, "pass", "registration completed (clique 32766)"),
        ({"state": 2, "status": 0, "clique": 0}, "fail", "registration is in_progress: start nvidia-fabricmanager"),
        ({"state": 1, "status": 0, "clique": 0}, "fail", "registration is not_started"),
        ({"state": 3, "status": real.NVML_ERROR_NOT_READY, "clique": 0}, "fail", "completed with error NOT_READY"),
        ({"state": 0, "status": 0, "clique": 0}, "not_supported", "not supported"),
    ],
)
def test_fabric_on_an_nvswitch_node(node, capsys, tmp_path, fabric, status, words):  # noqa: PLR0917 - pytest fixtures and parameters
    node(FakeNVML([hgx_gpu(i, fabric=fabric) for i in range(8)]), hosts.hgx_h100(tmp_path))
    _failed, result = run_module(nvml_check.main, {"gpu_count": 8}, capsys)
    fabric_checks = checks_of(result, "fabric")
    assert len(fabric_checks) == 8
    assert {c["status"] for c in fabric_checks} == {status}
    assert words in fabric_checks[0]["message"]


def test_fabric_required_where_no_nvswitch_is_seen(node, capsys):
    node(FakeNVML([h100(0)]))
    failed, result = run_module(nvml_check.main, {"fabric": "required"}, capsys)
    assert failed and one(result, "fabric")["status"] == "fail"


def test_fabric_ignored(node, capsys, tmp_path):
    node(FakeNVML([hgx_gpu(0, fabric={"state": 1, "status": 0, "clique": 0})]), hosts.hgx_h100(tmp_path))
    failed, result = run_module(nvml_check.main, {"fabric": "ignore"}, capsys)
    assert not failed and checks_of(result, "fabric") == []


def test_a_lost_gpu_fails_readable(node, capsys):
    node(FakeNVML([h100(0), h100(1, lost=True)]))
    failed, result = run_module(nvml_check.main, {"gpu_count": 2}, capsys)
    assert failed
    assert one(result, "readable", gpu=0)["status"] == "pass"
    lost = one(result, "readable", gpu=1)
    assert lost["status"] == "fail" and "fell off the bus" in lost["message"]
    assert "gpu1 readable" in result["failed_checks"]


def test_missing_cuda_version_fails_min_cuda(node, capsys):
    node(FakeNVML([h100(0)], missing=["nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"]))
    failed, result = run_module(nvml_check.main, {"min_cuda_version": "12.0"}, capsys)
    assert failed and "does not report" in one(result, "min_cuda_version", gpu=None)["message"]


@pytest.mark.parametrize(
    "code, words",
    [
        (real.NVML_ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1"),
        (real.NVML_ERROR_DRIVER_NOT_LOADED, "no NVIDIA GPU on the PCI bus"),
        (real.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "Reboot"),
        (real.NVML_ERROR_NO_PERMISSION, "become: true"),
    ],
)
def test_nvml_that_cannot_start_is_the_one_failed_check(node, capsys, code, words):
    node(FakeNVML(init_error=code))
    failed, result = run_module(nvml_check.main, EVERYTHING, capsys)
    assert failed
    assert [c["check"] for c in result["checks"]] == ["nvml"]
    assert result["failed_checks"] == ["nvml"] and result["nvml"] == {}
    assert words in result["msg"] and result["msg"].startswith("1 of 1 checks failed: nvml: ")
    assert result["nvml_error"] == nvml.error_name(real, code)


def test_check_mode(node, capsys):
    node(FakeNVML([h100(0)]))
    failed, result = run_module(nvml_check.main, {"ecc": True, "_ansible_check_mode": True}, capsys)
    assert not failed and result["changed"] is False and one(result, "ecc")["status"] == "pass"


@pytest.mark.parametrize(
    "params, words",
    [
        ({"min_cuda_version": "twelve"}, "min_cuda_version must be numbers separated by dots"),
        ({"driver_version": "580.x"}, "driver_version must be numbers"),
        ({"product_pattern": "H100("}, "product_pattern is not a valid regular expression"),
        ({"mig_mode": "on"}, "value of mig_mode must be one of: enabled, disabled"),
    ],
)
def test_bad_arguments(node, capsys, params, words):
    fake = node(FakeNVML([h100(0)]))
    failed, result = run_module(nvml_check.main, params, capsys)
    assert failed and words in result["msg"]
    assert fake.calls == [], "arguments are checked before NVML is touched"


def test_missing_binding_is_the_one_failed_check(monkeypatch, capsys):
    monkeypatch.setattr(nvml, "import_pynvml", lambda: (None, "ImportError"))
    monkeypatch.setattr(interpreters, "probe_interpreters_for_module", lambda paths, name: None)
    failed, result = run_module(nvml_check.main, {"ecc": True}, capsys)
    assert failed and result["nvml_error"] == "BINDING_MISSING"
    assert result["failed_checks"] == ["nvml"] and result["checks"][0]["actual"] == "BINDING_MISSING"
    assert "nvidia-ml-py" in result["msg"]
