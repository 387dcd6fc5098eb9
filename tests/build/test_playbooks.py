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


def site_on(inventory, *extra):
    proc = subprocess.run(["ansible-playbook", "-i", inventory, "playbooks/site.yml"] + list(extra), cwd=ROOT,
                          capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    return proc.returncode, proc.stdout + proc.stderr


def test_an_inventory_without_gpu_nodes_stops_with_a_clear_message(tmp_path):
    empty = tmp_path / "empty.ini"
    empty.write_text("[gpu_nodes]\n\n[others]\nhost-1\n")
    for inventory, group, extra in ((str(empty), "gpu_nodes", []), ("localhost,", "gpu_nodes", []),
                                    (str(empty), "gpu_fleet", ["-e", "gpunode_hosts=gpu_fleet"])):
        rc, out = site_on(inventory, *extra)
        assert rc == 2, out
        assert "the inventory has no host in '%s': add the GPU nodes to the group gpu_nodes" % group in out, out
        # It stops there: no report of nobody, no play of the stack.
        assert "Run report" not in out and "TASK [gpunode.nvidia.preflight" not in out, out


def test_batches_and_the_failure_threshold_come_from_the_play_variables():
    """serial and max_fail_percentage are templated from gpunode_serial / gpunode_max_fail_percentage
    (default: one batch of every node, and stop at any failure), the cluster play imported after them."""
    import yaml
    with open(os.path.join(ROOT, "playbooks", "site.yml")) as handle:
        plays = yaml.safe_load(handle)
    stack = [p for p in plays if p.get("name") == "GPU host stack"][0]
    assert stack["serial"] == "{{ gpunode_serial | default('100%') }}"
    assert stack["max_fail_percentage"] == "{{ gpunode_max_fail_percentage | default(0) }}"
    assert plays[-1] == {"name": "Kubernetes components and validate's plugin stage",
                         "ansible.builtin.import_playbook": "kubernetes.yml"}


def upgrade(*extra):
    proc = subprocess.run(["ansible-playbook", "-i", INVENTORY, "playbooks/upgrade_driver.yml"] + list(extra), cwd=ROOT,
                          capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    return proc.returncode, proc.stdout + proc.stderr


def test_upgrade_driver_refuses_nodes_without_a_driver_to_move_to_and_runs_nothing_else():
    rc, out = upgrade()
    assert rc == 2, out
    assert "without either these nodes would only be converged to their default: gpu-a01, gpu-a02, gpu-b01" in out, out
    # The check ends the run: no play of site.yml started.
    assert [line for line in out.splitlines() if line.startswith("PLAY [")] == [
        "PLAY [Check that the upgrade names the driver to move to] **********************"], out


def test_upgrade_driver_with_a_branch_goes_on_to_site_one_node_at_a_time():
    # --limit localhost: the checks run, site.yml's GPU play finds no host of the limit (nothing is reached).
    rc, out = upgrade("-i", "localhost,", "-e", "driver_branch=550", "--limit", "localhost")
    assert rc == 0, out
    assert "PLAY [GPU host stack]" in out and "failed=0" in out, out
    with open(os.path.join(ROOT, "playbooks", "upgrade_driver.yml")) as handle:
        import yaml
        plays = yaml.safe_load(handle)
    assert plays[-1]["ansible.builtin.import_playbook"] == "site.yml" and plays[-1]["vars"] == {"gpunode_serial": 1}
