"""Judging the installed driver: verification, holds, the reboot decision, and
driver_source preinstalled."""

import hashlib

import pytest

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_changes as dc
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_outcome as do
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan as dp

from ... import hosts
from ...driver_data import gather, inputs, os_data, with_gpus
from .driver_cases import DEBIAN, HOPPER, UBUNTU, converged_state, family_of, lab_plan


# After installing: verification, holds and the reboot decision.

MODULE = {"path": "/lib/modules/6.1.0-50-amd64/updates/dkms/nvidia-current.ko", "version": "535.261.03",
          "vermagic": "6.1.0-50-amd64 SMP preempt mod_unload modversions", "built_for": "6.1.0-50-amd64"}
DKMS = {"module": "nvidia-current", "version": "535.261.03", "kernel": "6.1.0-50-amd64", "arch": "x86_64", "state": "installed",
        "detail": "nvidia-current/535.261.03, 6.1.0-50-amd64, x86_64: installed"}


def verified_state(**changes):
    state = converged_state(held=False)
    state.update({"modules": {"6.1.0-50-amd64": [dict(MODULE)]}, "dkms": [dict(DKMS)], "commands": {"nvidia-smi": "/usr/bin/nvidia-smi"}})
    state.update(changes)
    return state


def judge(facts, state, **overrides):
    result, given = lab_plan(facts, **overrides)
    change = dc.changes(result, {"packages": {}, "available": {}}, given, family_of(DEBIAN))
    return do.outcome(result, change, state, facts=facts, inputs=given, changed=True)


def test_lab_node_verifies_and_holds_the_driver_version(bookworm):
    result = judge(bookworm, verified_state(), version="535.261.03")
    assert result["problems"] == [] and result["rebuild"] is False
    assert result["version"] == "535.261.03"
    assert "dkms: nvidia-current/535.261.03, 6.1.0-50-amd64, x86_64: installed" in result["checks"]
    assert any(c.startswith("modinfo ") and "vermagic 6.1.0-50-amd64" in c for c in result["checks"])
    # Everything at the driver's version plus persistenced; nvidia-modprobe (own version) is not held.
    assert result["to_hold"] == sorted(["firmware-nvidia-gsp", "libnvidia-cfg1", "libnvidia-ml1", "nvidia-alternative", "nvidia-kernel-dkms",
                                        "nvidia-kernel-support", "nvidia-persistenced", "nvidia-smi"])
    assert result["reboot"] == {"policy": "if_needed", "required": False, "reboot": False, "suppressed": None,
                                "reason": "no NVIDIA GPU on the PCI bus: there is no module to load"}


def test_missing_dkms_build_asks_for_a_rebuild(bookworm):
    result = judge(bookworm, verified_state(dkms=[dict(DKMS, kernel="6.1.0-49-amd64")], modules={}))
    assert result["rebuild"] is True
    assert any("dkms has no installed nvidia module 535.261.03 for kernel 6.1.0-50-amd64" in p for p in result["problems"])
    assert any("no NVIDIA kernel module file" in p for p in result["problems"])


def test_vermagic_for_another_kernel_fails(bookworm):
    wrong = dict(MODULE, vermagic="6.18.44-fc-v657 SMP", built_for="6.18.44-fc-v657")
    result = judge(bookworm, verified_state(modules={"6.1.0-50-amd64": [wrong]}))
    assert any("vermagic '6.18.44-fc-v657 SMP', not kernel 6.1.0-50-amd64" in p for p in result["problems"])


def test_split_packages_fail(bookworm):
    state = verified_state()
    state["packages"]["libnvidia-ml1"] = "535.309.01-0+deb12u1"
    result = judge(bookworm, state)
    assert any("libnvidia-ml1 is at 535.309.01-0+deb12u1, not 535.261.03" in p for p in result["problems"])


def gpu_node(facts, loaded=None, container="none", nouveau=False):
    facts = with_gpus(facts, HOPPER)
    facts["kernel"] = {"running": "6.1.0-50-amd64", "target": "6.1.0-50-amd64"}
    facts["virtualization"] = {"container": container, "vm": "none"}
    facts["modules"] = {"nouveau": nouveau}
    state = verified_state(loaded=loaded, nvidia_smi={"rc": 9, "gpus": [], "error": "NVIDIA-SMI has failed"})
    return facts, state


@pytest.mark.parametrize(
    "policy, loaded, container, reboot, required, suppressed",
    [
        ("if_needed", "535.261.03", "none", False, False, None),
        ("if_needed", "535.216.01", "none", True, True, None),
        ("if_needed", None, "none", True, True, None),
        ("if_needed", "535.216.01", "docker", False, True, "container"),
        ("never", "535.216.01", "none", False, True, "reboot the node yourself"),
        ("always", "535.261.03", "none", True, False, None),
        ("always", "535.261.03", "podman", False, False, "container"),
    ],
)
def test_reboot_policy(bookworm, policy, loaded, container, reboot, required, suppressed):  # noqa: PLR0917 (pytest parameters)
    banner = {"version": loaded, "kernel_module_type": "proprietary"} if loaded else None
    facts, state = gpu_node(bookworm, loaded=banner, container=container)
    decision = judge(facts, state, reboot=policy)["reboot"]
    assert (decision["reboot"], decision["required"]) == (reboot, required)
    assert (suppressed is None and decision["suppressed"] is None) or suppressed in decision["suppressed"]


def test_nouveau_and_other_kernel_need_a_reboot(bookworm):
    facts, state = gpu_node(bookworm, loaded=None, nouveau=True)
    facts["kernel"]["running"] = "6.1.0-49-amd64"
    result = judge(facts, state)
    assert "nouveau is loaded" in result["reboot"]["reason"]
    assert "built for kernel 6.1.0-50-amd64 and the node runs 6.1.0-49-amd64" in result["reboot"]["reason"]
    assert result["reload"] is False  # not the running kernel, and nouveau holds the GPU


def test_reload_in_place_before_rebooting(bookworm):
    facts, state = gpu_node(bookworm, loaded={"version": "535.216.01", "kernel_module_type": "proprietary"})
    assert judge(facts, state)["reload"] is True
    facts, state = gpu_node(bookworm, loaded={"version": "535.216.01", "kernel_module_type": "proprietary"}, container="docker")
    assert judge(facts, state)["reload"] is False


def test_loaded_right_driver_is_checked_with_nvidia_smi(bookworm):
    facts, state = gpu_node(bookworm, loaded={"version": "535.261.03", "kernel_module_type": "proprietary"})
    state["nvidia_smi"] = {"rc": 0, "gpus": [{"index": "0", "name": "NVIDIA H100 80GB HBM3", "driver_version": "535.261.03"}], "error": None}
    result = judge(facts, state)
    assert result["in_place"] and result["problems"] == []
    assert "nvidia-smi sees 1 GPU(s) on driver 535.261.03" in result["checks"]


# preinstalled: read and judge, never change.

H100_SMI = {"rc": 0, "gpus": [{"index": "0", "name": "NVIDIA H100 80GB HBM3", "driver_version": "580.159.04"}], "error": None}


def preinstalled(tmp_path, state, **overrides):
    facts = gather(hosts.gpu_machine_h100, tmp_path)
    given = inputs(source="preinstalled", nvml_install="none", **overrides)
    data, family = os_data(*UBUNTU)
    result = dp.plan(given, data, family, facts)
    assert result["problems"] == []
    change = dc.changes(result, state, given, family)
    assert change["install"] == [] and change["install_needed"] is False
    return do.outcome(result, change, state, facts=facts, inputs=given, changed=False), dc.query(result)


def gpu_machine_state(**changes):
    state = {"packages": {}, "loaded": {"version": "580.159.04", "kernel_module_type": "open"}, "modules": {},
             "nvml_library": {"path": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "version": "580.159.04"}, "nvidia_smi": dict(H100_SMI)}
    state.update(changes)
    return state


def test_preinstalled_recognises_the_gpu_machine(tmp_path):
    result, query = preinstalled(tmp_path, gpu_machine_state(), branch="580", kernel_module_type="open")
    assert query["nvidia_smi"] is True and len(query["kernels"]) == 1  # the running kernel
    assert result["problems"] == [] and result["version"] == "580.159.04"
    assert result["checks"] == ["running driver 580.159.04 (open kernel module)", "NVML library 580.159.04 at /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
                                "nvidia-smi sees 1 GPU(s): NVIDIA H100 80GB HBM3"]
    assert result["reboot"]["reboot"] is False and result["to_hold"] == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"version": "580.95.05"}, "not driver_version 580.95.05"),
        ({"branch": "570"}, "not in driver_branch 570"),
        ({"kernel_module_type": "proprietary"}, "uses the open kernel module, not proprietary"),
    ],
)
def test_preinstalled_mismatches(tmp_path, overrides, message):
    result, _query = preinstalled(tmp_path, gpu_machine_state(), **overrides)
    assert any(message in p for p in result["problems"])


def test_preinstalled_without_a_driver(tmp_path):
    result, _query = preinstalled(tmp_path, gpu_machine_state(loaded=None, nvml_library=None, nvidia_smi={"rc": 127, "gpus": [], "error": "x"}))
    assert any("no NVIDIA driver is loaded on a node with 1 GPU(s)" in p for p in result["problems"])
    assert any("no NVIDIA driver is loaded or installed" in p for p in result["problems"])


# The fast path of a converged re-run: what would make the role run install, configure and verify.

FILES = [{"src": "etc/modprobe.d/gpunode-blacklist-nouveau.conf.j2", "dest": "/etc/modprobe.d/gpunode-blacklist-nouveau.conf", "mode": "0644"},
         {"src": "usr/local/libexec/gpunode/nvidia-gpu-present.j2", "dest": "/usr/local/libexec/gpunode/nvidia-gpu-present", "mode": "0755"}]
TEXTS = ("blacklist nouveau\n", "#!/bin/sh\n")


def read_of(texts=TEXTS, modes=("0644", "0755"), uid=0, **changes):
    checksums = dict((f["dest"], {"sha256": hashlib.sha256(t.encode()).hexdigest(), "mode": m, "uid": uid, "gid": 0})
                     for f, t, m in zip(FILES, texts, modes))
    state = verified_state(held=converged_state()["held"], checksums=checksums,
                           services={"nvidia-persistenced": {"active": "inactive", "enabled": "enabled"}})
    state.update(changes)
    return state


def drift_of(facts, state, texts=TEXTS, persistenced=True, **overrides):
    result, given = lab_plan(facts, version="535.261.03", **overrides)
    change = dc.changes(result, state, given, family_of(DEBIAN))
    judged = do.outcome(result, change, state, facts=facts, inputs=given, changed=False)
    return do.drift(result, change, state, judged, inputs=given, files=FILES, rendered=texts, persistenced=persistenced)


def test_a_converged_node_has_no_drift(bookworm):
    assert drift_of(bookworm, read_of()) == []


@pytest.mark.parametrize("state, reason", [
    (dict(texts=["blacklist nouveau\n# edited\n", "#!/bin/sh\n"]), "/etc/modprobe.d/gpunode-blacklist-nouveau.conf differs from what the role writes"),
    (dict(modes=("0644", "0644")), "/usr/local/libexec/gpunode/nvidia-gpu-present differs from what the role writes"),
    (dict(uid=1000), "/etc/modprobe.d/gpunode-blacklist-nouveau.conf differs from what the role writes"),
    (dict(checksums={}), "/etc/modprobe.d/gpunode-blacklist-nouveau.conf to write"),
    (dict(held=[]), "packages to hold: firmware-nvidia-gsp, libnvidia-cfg1"),
    (dict(services={"nvidia-persistenced": {"active": "inactive", "enabled": "disabled"}}), "nvidia-persistenced to enable (disabled)"),
    (dict(dkms=[]), "the module to build for the target kernel"),
    (dict(packages={}), "packages to install or change: nvidia-kernel-dkms=535.261.03-*"),
])
def test_what_was_read_to_differ_is_named(bookworm, state, reason):
    reasons = drift_of(bookworm, read_of(**state))
    assert any(r.startswith(reason) for r in reasons), reasons


def test_a_template_that_renders_differently_now_is_drift(bookworm):
    # A changed input (or a new collection version) renders another text than the node has.
    assert drift_of(bookworm, read_of(), texts=["blacklist nouveau\nblacklist lbm-nouveau\n", "#!/bin/sh\n"]) == [
        "/etc/modprobe.d/gpunode-blacklist-nouveau.conf differs from what the role writes"]


def test_what_is_not_read_is_never_assumed_converged(bookworm):
    result, given = lab_plan(bookworm, version="535.261.03")
    state = read_of()
    change = dc.changes(result, state, given, family_of(DEBIAN))
    judged = do.outcome(result, change, state, facts=bookworm, inputs=given, changed=False)
    dnf = dict(result, package_manager="dnf")
    assert do.drift(dnf, change, state, judged, inputs=given, files=FILES, rendered=TEXTS, persistenced=True)[0].startswith("dnf: ")
    keyed = dict(result, repository={"key_file": "/etc/apt/keyrings/k.asc", "key_checksum": "sha256:" + "0" * 64})
    assert do.drift(keyed, change, state, judged, inputs=given, files=FILES, rendered=TEXTS, persistenced=True) == [
        "/etc/apt/keyrings/k.asc to fetch"]
    state["checksums"]["/etc/apt/keyrings/k.asc"] = {"sha256": "1" * 64, "mode": "0644", "uid": 0, "gid": 0}
    assert do.drift(keyed, change, state, judged, inputs=given, files=FILES, rendered=TEXTS, persistenced=True) == [
        "/etc/apt/keyrings/k.asc to fetch again (checksum sha256:%s)" % ("0" * 64)]
    assert do.drift(result, change, state, judged, inputs=given, files=FILES, rendered=TEXTS[:1], persistenced=True) == [
        "the role's templates were not all rendered"]
