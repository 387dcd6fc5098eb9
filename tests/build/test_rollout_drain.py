"""The rollout role's drain flow against a test double of the Kubernetes API server (tests/k8s_api_double.py:
no API server can be installed here, and this flow has not been run against a live cluster).

The real kubernetes.core.k8s_info and k8s_drain modules, through the real kubernetes client, on the
controller: cordon before the evictions, evictions a PodDisruptionBudget refuses tried again, DaemonSet
pods left alone, uncordon only after validate passed and only for a node this run cordoned, a node
cordoned before the run left cordoned, a failed node left cordoned, a node nothing changes on never
touched, and the refusals (a node the cluster does not know, pods with emptyDir data) at once."""

import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from k8s_api_double import ApiDouble, pod  # noqa: E402  (tests/ is not a package)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# What site.yml and the stack roles do, reduced to the rollout role's three entry points: publish,
# drain before a change (called twice on a node: the second call does nothing), uncordon after validate.
PLAYBOOK = """
- name: The rollout role's flow, as site.yml and the stack roles call it
  hosts: gpu_nodes
  gather_facts: false
  tasks:
    - name: Publish
      ansible.builtin.include_role:
        name: gpunode.nvidia.rollout
    - name: The driver will change
      ansible.builtin.include_role:
        name: gpunode.nvidia.rollout
        tasks_from: drain.yml
      vars:
        rollout_change: driver
      when: inventory_hostname in changing
    - name: The runtime will change too (no second drain)
      ansible.builtin.include_role:
        name: gpunode.nvidia.rollout
        tasks_from: drain.yml
      vars:
        rollout_change: containerd
      when: inventory_hostname in changing
    - name: What validate published
      ansible.builtin.set_fact:
        gpunode_validate: {fails_play: "{{ inventory_hostname in failing }}"}
    - name: Uncordon
      ansible.builtin.include_role:
        name: gpunode.nvidia.rollout
        tasks_from: uncordon.yml
    - name: Keep what the role published, for the test
      ansible.builtin.copy:
        content: "{{ gpunode_rollout | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
"""


def run(tmp_path, api, hosts, changing, *, failing=(), extra=None, check=False):
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    inventory = {"gpu_nodes": {"hosts": dict((h, {}) for h in hosts), "vars": dict({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "rollout_kubeconfig": kubeconfig, "rollout_drain_delay": 1}, **(extra or {}))}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "flow.yml").write_text(PLAYBOOK)
    out_dir = tmp_path / "published"
    out_dir.mkdir(exist_ok=True)
    argv = ["ansible-playbook", "-i", str(tmp_path / "inventory.json"), str(tmp_path / "flow.yml"),
            "-e", json.dumps({"changing": list(changing), "failing": list(failing), "out_dir": str(out_dir)})]
    proc = subprocess.run(argv + (["--check"] if check else []), cwd=ROOT, capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    published = dict((p.stem, json.loads(p.read_text())) for p in out_dir.glob("*.json"))
    return proc.returncode, proc.stdout + proc.stderr, published


def calls_for(api, node):
    """The double's writes about one node and its pods, in order."""
    pods = set("%s/%s" % (p["namespace"], p["name"]) for p in POD_NODES.get(node, []))
    return [w for w in api.writes() if w[1] == node or w[1] in pods]


POD_NODES = {}


def with_pods(*items):
    POD_NODES.clear()
    for item in items:
        POD_NODES.setdefault(item["node"], []).append(item)
    return list(items)


def test_drain_evicts_through_refusals_and_uncordons_only_what_it_cordoned_after_validate(tmp_path):
    pods = with_pods(pod("train-1", "gpu-1", refusals=2), pod("infer-1", "gpu-1", namespace="ml"),
                     pod("device-plugin-x", "gpu-1", namespace="gpu-operator", owner="DaemonSet"),
                     pod("train-2", "gpu-2"), pod("train-3", "gpu-3"), pod("idle-4", "gpu-4"))
    with ApiDouble({"gpu-1": False, "gpu-2": True, "gpu-3": False, "gpu-4": False}, pods) as api:
        rc, out, published = run(tmp_path, api, ["gpu-1", "gpu-2", "gpu-3", "gpu-4"], changing=["gpu-1", "gpu-2", "gpu-3"],
                                 failing=["gpu-3"])
        assert rc == 0, out
        # gpu-1: cordoned first, the PodDisruptionBudget's two refusals tried again, the DaemonSet pod left, then
        # uncordoned after validate passed.
        # (k8s_drain stops at the first refused eviction; the next try finds the node cordoned and starts again.)
        assert calls_for(api, "gpu-1") == [("patch", "gpu-1"), ("evict", "default/train-1"), ("evict", "default/train-1"),
                                           ("evict", "default/train-1"), ("evict", "ml/infer-1"), ("patch", "gpu-1")], api.writes()
        assert re.search(r"FAILED - RETRYING: \[gpu-1 -> localhost\]: Cordon the node", out), out
        assert api.nodes["gpu-1"] is False
        assert [p["name"] for p in api.pods if p["node"] == "gpu-1"] == ["device-plugin-x"]
        # gpu-2 was cordoned before the run: drained, never patched, still cordoned.
        assert calls_for(api, "gpu-2") == [("evict", "default/train-2")] and api.nodes["gpu-2"] is True
        # gpu-3 failed validation: cordoned, drained, left cordoned.
        assert calls_for(api, "gpu-3") == [("patch", "gpu-3"), ("evict", "default/train-3")] and api.nodes["gpu-3"] is True
        # gpu-4: nothing changes on it, so not even a read.
        assert not [c for c in api.calls if "gpu-4" in c[1] or "idle-4" in c[1]], api.calls
        # Reads before writes: every drained node's Node is read before it is patched.
        first_read = min(i for i, c in enumerate(api.calls) if c[:2] == ("GET", "/api/v1/nodes/gpu-1"))
        first_patch = min(i for i, c in enumerate(api.calls) if c[:2] == ("PATCH", "/api/v1/nodes/gpu-1"))
        assert first_read < first_patch
    assert published["gpu-1"]["drained"] and published["gpu-1"]["uncordoned"] and published["gpu-1"]["change"] == "driver"
    assert published["gpu-2"]["cordoned_before"] is True and not published["gpu-2"]["uncordoned"]
    assert published["gpu-3"]["drained"] and not published["gpu-3"]["uncordoned"]
    assert published["gpu-4"] == dict(published["gpu-4"], drained=False, change=None, enabled=True)


def test_pod_selectors_limit_the_evictions(tmp_path):
    pods = with_pods(pod("gpu-job", "gpu-1", labels={"nvidia.com/gpu.workload": "true"}), pod("web", "gpu-1"))
    with ApiDouble({"gpu-1": False}, pods) as api:
        rc, out, _published = run(tmp_path, api, ["gpu-1"], changing=["gpu-1"],
                                  extra={"rollout_pod_selectors": ["nvidia.com/gpu.workload=true"]})
        assert rc == 0, out
        assert calls_for(api, "gpu-1") == [("patch", "gpu-1"), ("evict", "default/gpu-job"), ("patch", "gpu-1")]
        assert [p["name"] for p in api.pods] == ["web"]


@pytest.mark.parametrize(("nodes", "pods", "extra", "message"), [
    ({"other": False}, [], {}, "gpu-1 is not a node of the cluster rollout_kubeconfig names"),
    ({"gpu-1": False}, [pod("scratch", "gpu-1", empty_dir=True)], {}, "cannot delete Pods with local storage"),
    ({"gpu-1": False}, [pod("stuck", "gpu-1", refusals=99)], {"rollout_drain_retries": 2},
     "violate the pod's disruption budget"),
])
def test_refusals_fail_the_node_and_leave_it_as_it_was_or_cordoned(tmp_path, nodes, pods, extra, message):
    with_pods(*pods)
    with ApiDouble(nodes, pods) as api:
        rc, out, published = run(tmp_path, api, ["gpu-1"], changing=["gpu-1"], extra=extra)
        assert rc == 2 and message in out, out
        assert "gpu-1" not in published  # the play stopped on the node at the drain
        evictions = [w for w in api.writes() if w[0] == "evict"]
        if "disruption budget" in message:
            # Tried 1 + 2 times, then failed; the node stays cordoned (its pods are still there).
            assert len(evictions) == 3 and api.nodes["gpu-1"] is True, api.writes()
        else:
            # Refused at once: no eviction; k8s_drain takes its own cordon back.
            assert evictions == [] and api.nodes.get("gpu-1") in (None, False), api.writes()


def test_check_mode_reads_the_node_and_changes_nothing(tmp_path):
    pods = with_pods(pod("train-1", "gpu-1"))
    with ApiDouble({"gpu-1": False}, pods) as api:
        rc, out, published = run(tmp_path, api, ["gpu-1"], changing=["gpu-1"], check=True)
        assert rc == 0, out
        assert api.writes() == [] and ("GET", "/api/v1/nodes/gpu-1", {}) in api.calls
    assert published["gpu-1"]["change"] == "driver" and published["gpu-1"]["drained"] is False
    assert "would drain" in published["gpu-1"]["drain_result"]
