"""Verify the fleet after site.yml in batches of two, its idempotence run and side_effect's stopped
run: every node has the whole stack, the same on each release, and the first run's report says so."""

import json
import os
import re

import pytest
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
NODES = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("gpu_nodes")
testinfra_hosts = ["podman://" + name for name in NODES]
TOOLKIT = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"]
DRIVER = {"12": "535.261.03", "13": "550.163.01"}


def report(name):
    with open(os.path.join(EPHEMERAL, name)) as handle:
        return json.load(handle)


def release(host):
    return host.system_info.release.split(".")[0]


def test_five_nodes_of_both_releases():
    assert NODES == ["mol-fleet-a12", "mol-fleet-b13", "mol-fleet-c12", "mol-fleet-d13", "mol-fleet-e12"]


def test_the_driver_is_built_and_held(host):
    kernel = re.search(r"Depends: linux-headers-(\S+)", host.check_output("apt-cache depends linux-headers-amd64")).group(1)
    assert "nvidia-current/%s, %s, x86_64: installed" % (DRIVER[release(host)], kernel) in host.check_output("dkms status")
    assert "nvidia-kernel-dkms" in host.check_output("apt-mark showhold").split()


def test_the_toolkit_is_installed_at_one_version_and_held(host):
    versions = set(host.package(p).version for p in TOOLKIT)
    assert len(versions) == 1 and all(host.package(p).is_installed for p in TOOLKIT), versions
    assert set(TOOLKIT) <= set(host.check_output("apt-mark showhold").split())


def test_containerd_runs_with_the_nvidia_runtime(host):
    assert host.service("containerd").is_running and host.service("containerd").is_enabled
    dump = host.check_output("containerd config dump")
    assert re.search(r"runtimes\.nvidia\]", dump) and "/usr/bin/nvidia-container-runtime" in dump, dump[-2000:]
    # side_effect put the broken file back; the whole file parses again.
    assert "[[[not toml" not in host.file("/etc/containerd/config.toml").content_string


@pytest.mark.parametrize("name", ["first-run-report.json", "reports/run-report.json"])
def test_the_reports_of_the_converge_and_of_the_idempotence_run(name):
    data = report(name)
    assert data["tally"] == "5 nodes: 5 no GPU", data["tally"]
    assert [n["host"] for n in data["nodes"]] == NODES
    for node in data["nodes"]:
        assert node["driver"] == DRIVER[node["host"][-2:]] and node["toolkit"] and node["containerd"], node
    changed = [n["changed"] for n in data["nodes"]]
    if name == "first-run-report.json":
        # The toolkit and containerd went in prepare: the first run installed them on every node.
        assert all({"container_toolkit", "containerd"} <= set(c) for c in changed), changed
    else:
        assert changed == [[]] * 5, changed
