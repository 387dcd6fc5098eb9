"""The checkov helper of tests/k8s_checks.py against checkov itself (its own venv, .venv-checkov).

Here, not in tests/unit: the controller matrix's legs on Python 3.13 run in a container where
the host's checkov venv cannot start, and checkov is the main line's tool only."""

import k8s_checks
import pytest
import yaml
from unit.test_k8s_checks import DAEMONSET
from unit.utils import run_module

from ansible_collections.gpunode.nvidia.plugins.modules import k8s_render


def test_checkov_finds_a_privileged_pod(tmp_path):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "gpu-test"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
    }
    (tmp_path / "pod-bad.yaml").write_text(yaml.safe_dump(pod, explicit_start=True))
    findings = k8s_checks.checkov_findings(tmp_path)
    assert ("CKV_K8S_16", "Pod.gpu-test.bad", "pod-bad.yaml") in findings  # privileged
    assert ("CKV_K8S_11", "Pod.gpu-test.bad", "pod-bad.yaml") in findings  # no CPU limit
    assert ("CKV_K8S_13", "Pod.gpu-test.bad", "pod-bad.yaml") in findings  # no memory limit


def test_checkov_yaml_it_cannot_read_fails(tmp_path):
    (tmp_path / "broken.yaml").write_text("---\napiVersion: v1\nkind: Pod\nmetadata: {name: x\n")
    with pytest.raises(AssertionError, match="broken.yaml is no YAML"):
        k8s_checks.checkov_findings(tmp_path)


def test_checkov_reads_what_k8s_render_writes(capsys, tmp_path):
    # The module's files (a comment line first, kustomizations beside them, one directory per
    # component) are all read: the object count matches, and the Pod's finding names its file.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "gpu-test"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]}}
    failed, result = run_module(k8s_render.main, {"objects": [DAEMONSET, pod], "dest": str(tmp_path), "component": "device-plugin"}, capsys)
    assert not failed, result
    findings = k8s_checks.checkov_findings(tmp_path)
    assert ("CKV_K8S_16", "Pod.gpu-test.bad", "device-plugin/pod-bad.yaml") in findings
    # A DaemonSet's pod template is checked as a Pod named after the DaemonSet and its labels.
    assert {f[1] for f in findings} == {"Pod.gpu-test.bad", "DaemonSet.gpu-operator.nvidia-device-plugin",
                                        "Pod.gpu-operator.nvidia-device-plugin.app-nvidia-device-plugin"}
