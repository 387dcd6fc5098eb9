"""One leg of the controller matrix (scripts/controllers.sh): under this leg's ansible-core,
playbooks/site.yml converges a lab node, then runs again with nothing changed.

scripts/controllers.sh starts the node and names what this test needs: GPUNODE_LEG_INVENTORY
(the lab's inventory) and GPUNODE_LEG_CORE (the ansible-core version the leg must run).
validate_continue_after_failure is on: lab nodes have no GPU, so the driver stage fails and
would block the later stages; with it every stage runs, and its templating is proven on the line.
"""

import json
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def required_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail("%s is not set: run this test through scripts/controllers.sh" % name)
    return value


def recaps(output):
    """PLAY RECAP lines: host -> {ok, changed, failed, ...}."""
    tail = output[output.rindex("PLAY RECAP"):]
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in re.findall(r"^(\S+)\s+: (.*)$", tail, re.M)}


def site(inventory, report_dir):
    # Reports into this test's own directory: the fault test runs beside the matrix and writes its own.
    proc = subprocess.run(["ansible-playbook", "playbooks/site.yml", "-i", inventory, "-e", "validate_continue_after_failure=true",
                           "-e", "gpunode_report_dir=%s" % report_dir], cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_this_leg_runs_its_ansible_core():
    out = subprocess.run(["ansible-playbook", "--version"], capture_output=True, text=True, check=True).stdout
    assert re.match(r"ansible-playbook \[core %s\]" % re.escape(required_env("GPUNODE_LEG_CORE")), out), out


# The leg's node starts from the saved driver image (scripts/controllers.sh), made either by the driver role
# alone or by the README's main command, which also installed the toolkit and containerd: those go, so that
# under every line this run installs and configures them (the toolkit's repository and key included).
STRIP = open(os.path.join(ROOT, "tests", "lab", "strip-toolkit-containerd.sh")).read()


def leg_node(inventory):
    with open(inventory) as handle:
        hosts = sorted(set(re.findall(r"^\s+(\S+-bookworm-\d+):\s*$", handle.read(), re.M)))
    assert len(hosts) == 1, hosts
    return hosts[0]


def test_site_converges_then_changes_nothing(tmp_path):
    inventory = required_env("GPUNODE_LEG_INVENTORY")
    # A leg whose controller runs in a container reaches the host's podman through this (scripts/controllers.sh).
    podman = os.environ.get("ANSIBLE_PODMAN_EXECUTABLE", "podman")
    strip = subprocess.run([podman, "exec", leg_node(inventory), "sh", "-ec", STRIP], capture_output=True, text=True, check=False)
    assert strip.returncode == 0, strip.stdout + strip.stderr
    rc, first = site(inventory, tmp_path)
    assert rc == 0, first
    nodes = [h for h in recaps(first) if h != "localhost"]
    assert len(nodes) == 1, recaps(first)
    node = nodes[0]
    assert recaps(first)[node]["failed"] == 0 and recaps(first)[node]["changed"] > 0, recaps(first)
    # Every stage ran; on a node without a GPU: the driver fails (no GPU), the toolkit and
    # runtime pass, the container stage fails to pull its image (no registry here), the cuda stage finds no GPU.
    report = json.loads((tmp_path / "run-report.json").read_text())
    assert report["tally"] == "1 node: 1 no GPU" and [n["host"] for n in report["nodes"]] == [node], report
    assert report["nodes"][0]["validate"] == {"driver": "fail", "toolkit": "pass", "container": "fail", "cuda": "fail",
                                              "plugin": "skip"}, report["nodes"][0]
    # The run report as printed (plain text, not a quoted debug list).
    assert re.search(r"^Run report: 1 node: 1 no GPU$", first, re.M), first
    assert re.search(r"^%s +debian 12 +-/0 +\d+\.\d+\.\d+ +1\.20\.0-1 +1\.6\.\d+ \(nvidia\) +no GPU +\S" % re.escape(node), first, re.M), first

    rc, second = site(inventory, tmp_path)
    assert rc == 0, second
    assert recaps(second)[node]["changed"] == 0 and recaps(second)[node]["failed"] == 0, second
