"""The role_inputs action plugin, run by ansible-playbook for real on the controller (it never connects to a node)."""

import json
import os
import subprocess

from ...conftest import ROOT

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - gpunode.nvidia.role_inputs:
      register: checked
    - ansible.builtin.copy:
        content: "{{ checked | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
"""

HOSTS = {
    "typo": {"containerd_cgroup_drivr": "systemd", "validate_gpu_count": 2},
    "negative": {"validate_gpu_count": -2},
    "regex": {"validate_product_pattern": "H100("},
    "versions": {"validate_driver_version": "5x", "validate_min_cuda_version": "twelve"},
    "runtime": {"containerd_runtime_name": "nvi dia", "containerd_cgroup_driver": "bogus"},
    "contradiction": {"containerd_runtime_default": "true", "containerd_runtime_state": "absent"},
    "later_fact": {"validate_driver_version": "{{ gpunode_driver.version }}"},
    "templated": {"_site_count": 3, "validate_gpu_count": "{{ _site_count - 5 }}"},
}


def run(tmp_path, extra=()):
    inventory = {"all": {"hosts": {h: dict(v, ansible_connection="local") for h, v in HOSTS.items()}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(ROOT, ".cache", "collections")
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inventory.json"), str(tmp_path / "play.yml"),
                           "-e", "out=%s" % tmp_path, *extra], check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, proc.stdout + proc.stderr


def test_refusals_warnings_and_passes(tmp_path):
    proc, out = run(tmp_path)
    assert proc.returncode == 2, out
    passed = dict((h, json.loads((tmp_path / ("%s.json" % h)).read_text())) for h in HOSTS if (tmp_path / ("%s.json" % h)).exists())
    # Passed: a typo is a warning, not a refusal; a value naming a later fact is left to the role.
    assert sorted(passed) == ["later_fact", "typo"], out
    assert passed["typo"]["unknown"] == ["containerd_cgroup_drivr"]
    assert ("containerd_cgroup_drivr is not a variable of any gpunode.nvidia role (it is ignored); "
            "did you mean containerd_cgroup_driver?") in " ".join(out.split())
    assert "validate_gpu_count" in passed["typo"]["checked"]
    assert "validate_driver_version" not in passed["later_fact"]["checked"]
    flat = " ".join(out.split())
    for words in (
        "validate_gpu_count is -2, below -1",
        "validate_product_pattern is not a valid regular expression",
        "validate_driver_version is '5x', not a driver version",
        "validate_min_cuda_version is 'twelve', not a CUDA version",
        "containerd_runtime_name is 'nvi dia': a RuntimeClass handler must be a DNS-1123 label",
        "value of containerd_cgroup_driver must be one of: auto, systemd, cgroupfs, keep, got: bogus",
        "containerd_runtime_default is true and containerd_runtime_state is absent",
        # A templated value is checked as the role will see it.
        "validate_gpu_count is -2, below -1",
    ):
        assert words in flat, words
    # The refusal is short: no argument spec dump.
    assert "argument_spec_data" not in out and "description" not in out


def test_extra_vars_are_checked_too(tmp_path):
    proc, out = run(tmp_path, ("-e", "validate_gpu_count=-7", "--limit", "typo"))
    assert proc.returncode == 2 and "validate_gpu_count is -7, below -1" in out, out


def test_a_refused_password_is_never_quoted(tmp_path):
    """A no_log option's value stays out of the refusal, even when the refusal is about that value."""
    canary = "canary-5d1e-refused-password"
    credentials = [{"name": "pull", "registry": "nvcr.io", "username": "u", "password": {"nested": canary}},
                   {"name": "pull-2", "registry": "nvcr.io", "password": canary}]
    proc, out = run(tmp_path, ("-e", json.dumps({"gpu_cluster_image_pull_credentials": credentials}), "--limit", "typo", "-vvv"))
    assert proc.returncode == 2, out
    assert "gpu_cluster_image_pull_credentials" in out and "username" in out, out
    assert canary not in out
