"""tests/k8s_checks.py: the schema and policy checks fail what they should, and pass what they should."""

import copy
import os

import pytest
import yaml

import k8s_checks

DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "nvidia-device-plugin", "namespace": "gpu-operator", "labels": {"app": "nvidia-device-plugin"}},
    "spec": {
        "selector": {"matchLabels": {"app": "nvidia-device-plugin"}},
        "template": {
            "metadata": {"labels": {"app": "nvidia-device-plugin"}},
            "spec": {
                "containers": [{
                    "name": "plugin",
                    "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.4",
                    "resources": {"limits": {"memory": "64Mi"}},
                    "volumeMounts": [{"name": "plugins", "mountPath": "/var/lib/kubelet/device-plugins"}],
                }],
                "volumes": [{"name": "plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
            },
        },
    },
}
SERVICEMONITOR = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "dcgm-exporter", "namespace": "gpu-operator"},
    "spec": {"selector": {"matchLabels": {"app": "dcgm-exporter"}}, "endpoints": [{"port": "metrics"}]},
}


def container(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture()
def daemonset():
    return copy.deepcopy(DAEMONSET)


def test_newest_version_is_read_from_the_package():
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements/controller.txt, not in this leg's pins")
    major, minor = k8s_checks.NEWEST.split(".")
    assert major == "1" and int(minor) >= 37, k8s_checks.NEWEST


def test_a_valid_daemonset_passes_on_both_versions(daemonset):
    assert k8s_checks.validate_objects([daemonset]) == []
    assert k8s_checks.validate_objects([daemonset], versions=("1.29", k8s_checks.NEWEST)) == []


def test_an_unknown_field_fails_strict(daemonset):
    container(daemonset)["imagePullPolice"] = "Always"  # a typo: only strict schemas refuse it
    with pytest.raises(AssertionError) as exc:
        k8s_checks.validate_objects([daemonset])
    text = str(exc.value)
    assert "DaemonSet gpu-operator/nvidia-device-plugin (object 0)" in text
    assert "Kubernetes 1.29" in text and "spec/template/spec/containers/0" in text and "imagePullPolice" in text


def test_a_wrong_type_fails(daemonset):
    daemonset["spec"]["template"]["spec"]["hostNetwork"] = "yes"
    with pytest.raises(AssertionError, match=r"hostNetwork.*'yes' is not of type 'boolean'"):
        k8s_checks.validate_objects([daemonset])


def test_a_field_only_the_newer_version_knows_fails_the_older():
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements/controller.txt, not in this leg's pins")
    # Pod-level resources came with Kubernetes 1.32 (alpha): 1.29's schema has no such field.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"resources": {"limits": {"cpu": "1"}}, "containers": [{"name": "c", "image": "i"}]}}
    assert k8s_checks.validate_objects([pod], versions=(k8s_checks.NEWEST,)) == []
    with pytest.raises(AssertionError, match=r"Pod p \(object 0\) does not validate against Kubernetes 1\.29"):
        k8s_checks.validate_objects([pod])


def test_crd_kinds_are_skipped_and_reported(daemonset):
    feature_rule = {"apiVersion": "nfd.k8s-sigs.io/v1alpha1", "kind": "NodeFeatureRule", "metadata": {"name": "nvidia"}, "spec": {}}
    assert k8s_checks.validate_objects([SERVICEMONITOR, daemonset, feature_rule]) == ["ServiceMonitor", "NodeFeatureRule"]


def test_an_unknown_kind_or_group_fails():
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements/controller.txt, not in this leg's pins")
    # ServiceMonitor of another group is not one of the known CRDs: no schema, so it fails.
    other = dict(SERVICEMONITOR, apiVersion="monitoring.example.com/v1")
    with pytest.raises(AssertionError, match="Couldn't find schema for kind ServiceMonitor"):
        k8s_checks.validate_objects([other])
    with pytest.raises(AssertionError, match="not a Kubernetes object"):
        k8s_checks.validate_objects([{"metadata": {"name": "x"}}])


def write_accepted(tmp_path, data):
    path = tmp_path / "accepted.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_accepted_findings_split_and_stale(tmp_path):
    accepted = k8s_checks.accepted_findings(write_accepted(tmp_path, {
        "CKV_K8S_16": {"resources": ["DaemonSet.gpu-operator.nvidia-*"], "reason": "the plugin's init container is privileged"},
        "CKV_K8S_19": {"resources": ["DaemonSet.*.dcgm-exporter"], "reason": "no longer needed"},
    }))
    findings = [
        ("CKV_K8S_16", "DaemonSet.gpu-operator.nvidia-device-plugin", "daemonset-nvidia-device-plugin.yaml"),
        ("CKV_K8S_16", "Pod.default.bad", "pod-bad.yaml"),
        ("CKV_K8S_11", "DaemonSet.gpu-operator.nvidia-device-plugin", "daemonset-nvidia-device-plugin.yaml"),
    ]
    not_accepted, stale = k8s_checks.unaccepted(findings, accepted)
    assert not_accepted == findings[1:]
    assert stale == [("CKV_K8S_19", "DaemonSet.*.dcgm-exporter")]
    with pytest.raises(AssertionError) as exc:
        k8s_checks.assert_findings_accepted(findings, accepted)
    assert "not accepted: CKV_K8S_16 Pod.default.bad" in str(exc.value) and "stale" in str(exc.value)
    k8s_checks.assert_findings_accepted(findings[:1], {"CKV_K8S_16": accepted["CKV_K8S_16"]})


@pytest.mark.parametrize("entry", [
    {"resources": [], "reason": "x"},
    {"resources": ["Pod.default.p"]},
    {"resources": ["Pod.default.p"], "reason": "two\nlines"},
    {"resources": "Pod.default.p", "reason": "x"},
])
def test_malformed_acceptances_are_refused(tmp_path, entry):
    with pytest.raises(AssertionError, match="CKV_K8S_16"):
        k8s_checks.accepted_findings(write_accepted(tmp_path, {"CKV_K8S_16": entry}))


def test_a_missing_checkov_venv_fails_unless_told(monkeypatch, tmp_path):
    monkeypatch.setattr(k8s_checks, "CHECKOV", os.path.join(str(tmp_path), "no-such", "checkov"))
    monkeypatch.delenv("GPUNODE_NO_CHECKOV", raising=False)
    with pytest.raises(pytest.fail.Exception, match="run scripts/checkov-venv.sh"):
        k8s_checks.checkov_findings(tmp_path)
    monkeypatch.setenv("GPUNODE_NO_CHECKOV", "1")
    with pytest.raises(pytest.skip.Exception):
        k8s_checks.checkov_findings(tmp_path)
