"""The preflight role's verdict (plugins/filter/preflight.py) over recorded-shape gpunode_preflight facts."""

from ansible_collections.gpunode.nvidia.plugins.filter import preflight as p

SUPPORTED = [{"id": "debian", "major_versions": ["12", "13"]}, {"id": "ubuntu", "major_versions": ["22.04", "24.04"]}]
LAB = {
    "os": {"id": "debian", "name": "Debian GNU/Linux", "version": "12", "major_version": "12", "family": "Debian"},
    "architecture": "x86_64", "init": {"systemd": True, "pid1": "systemd"}, "gpus": {"count": 0}, "nvswitches": {"count": 0},
    "kernel": {"headers_installed": False, "headers_available": False}, "driver": {"loaded": None},
    "secure_boot": {"enabled": False},
}


def test_a_supported_node_passes_with_its_summary():
    verdict = p.preflight_verdict(LAB, SUPPORTED, ["x86_64"], True, 0)
    assert verdict["problems"] == []
    assert verdict["summary"] == {"os": "debian 12", "arch": "x86_64", "gpus": 0, "nvswitches": 0, "driver": "-",
                                  "headers": "missing", "secure_boot": "off"}
    assert verdict["os"] == LAB["os"] and "problems" not in LAB


def test_every_problem_is_named_at_once():
    node = dict(LAB, os=dict(LAB["os"], version="11", major_version="11", name="Debian GNU/Linux"), architecture="ppc64le",
                init={"systemd": False, "pid1": "sleep"})
    problems = p.preflight_verdict(node, SUPPORTED, ["x86_64"], "true", "1")["problems"]
    assert len(problems) == 4
    assert problems[0].startswith("unsupported OS Debian GNU/Linux (id debian, version 11); supported: debian 12/13, ubuntu 22.04/24.04")
    assert problems[1] == "unsupported architecture ppc64le; supported: x86_64"
    assert problems[2].startswith("systemd is not the init system (PID 1 is sleep)")
    assert problems[3].startswith("found 0 NVIDIA GPU(s) on the PCI bus, preflight_min_gpus is 1")


def test_systemd_not_required_for_a_read_only_run():
    node = dict(LAB, init={"systemd": False, "pid1": "sleep"})
    assert p.preflight_verdict(node, SUPPORTED, ["x86_64"], False, 0)["problems"] == []


def test_summary_of_a_gpu_node():
    node = dict(LAB, gpus={"count": 8}, nvswitches={"count": 4}, driver={"loaded": {"version": "580.159.04"}},
                kernel={"headers_installed": True}, secure_boot={"enabled": None})
    summary = p.preflight_verdict(node, SUPPORTED, ["x86_64"], True, 8)["summary"]
    assert (summary["gpus"], summary["nvswitches"], summary["driver"], summary["headers"], summary["secure_boot"]) == (
        8, 4, "580.159.04", "installed", "unknown")
