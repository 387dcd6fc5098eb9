"""The playbooks parse against the example inventory, and the inventory has the groups they use."""

import json
import os
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INVENTORY = os.path.join(ROOT, "inventories", "example", "hosts.yml")


def run(*argv):
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_site_syntax_with_the_example_inventory():
    out = run("ansible-playbook", "--syntax-check", "-i", INVENTORY, "playbooks/site.yml")
    assert "playbook: playbooks/site.yml" in out


def test_kubernetes_syntax_with_the_example_inventory():
    out = run("ansible-playbook", "--syntax-check", "-i", INVENTORY, "playbooks/site.yml", "playbooks/kubernetes.yml")
    assert "playbook: playbooks/kubernetes.yml" in out


def test_example_inventory_groups_and_vars():
    data = json.loads(run("ansible-inventory", "-i", INVENTORY, "--list"))
    assert set(data["gpu_nodes"]["hosts"]) == {"gpu-a01", "gpu-a02", "gpu-b01"}
    assert data["k8s_control"]["hosts"] == ["k8s-cp01"]
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["gpu-a01"]["preflight_min_gpus"] == 1
    assert hostvars["gpu-b01"]["preflight_min_gpus"] == 8
