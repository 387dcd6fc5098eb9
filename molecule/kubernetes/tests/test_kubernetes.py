"""What the render mode wrote, read back: one directory per component with its kustomization, the
objects valid for Kubernetes 1.29 and the newest schemas (strict), the GPU host's facts and the
per-node config in them, and the apply path run or named as skipped."""

import glob
import os

import kubernetes_validate
import pytest
import yaml

OUT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "manifests")
COMPONENTS = ("gpu-cluster", "device-plugin", "gpu-feature-discovery", "dcgm-exporter")
# Only the controller's files are read: no node is contacted.
testinfra_hosts = ["local://"]


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def objects(component):
    directory = os.path.join(OUT, component)
    return [load(os.path.join(directory, name)) for name in load(os.path.join(directory, "kustomization.yaml"))["resources"]]


def test_every_component_is_listed_and_every_listed_file_exists():
    assert sorted(load(os.path.join(OUT, "kustomization.yaml"))["resources"]) == sorted(COMPONENTS)
    for component in COMPONENTS:
        listed = set(load(os.path.join(OUT, component, "kustomization.yaml"))["resources"])
        on_disk = set(os.path.basename(p) for p in glob.glob(os.path.join(OUT, component, "*.yaml"))) - {"kustomization.yaml"}
        assert listed == on_disk, component


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.latest_version()])
def test_rendered_objects_are_valid(component, version):
    for obj in objects(component):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD instance: kubernetes-validate has no schema for it
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_per_node_config_and_the_runtime_class_come_through():
    configs = next(o for o in objects("device-plugin") if o["kind"] == "ConfigMap")
    ts4 = yaml.safe_load(configs["data"]["ts4"])
    assert ts4["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert ts4["sharing"]["timeSlicing"]["renameByDefault"] is True
    runtime_class = next(o for o in objects("gpu-cluster") if o["kind"] == "RuntimeClass")
    assert runtime_class["handler"] == "nvidia"
    monitor = next(o for o in objects("dcgm-exporter") if o["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"


def test_render_mode_wrote_no_node_objects():
    # Nodes are labelled only by server-side apply; a GitOps tree must never create a Node.
    for component in COMPONENTS:
        assert not [o for o in objects(component) if o["kind"] == "Node"]


@pytest.mark.skipif(not os.environ.get("GPUNODE_KUBECONFIG"),
                    reason="apply path SKIPPED: no Kubernetes API server here (set GPUNODE_KUBECONFIG to run it)")
def test_apply_path_reached_the_cluster():
    kubernetes = pytest.importorskip("kubernetes")
    kubernetes.config.load_kube_config(os.environ["GPUNODE_KUBECONFIG"])
    apps = kubernetes.client.AppsV1Api()
    names = [d.metadata.name for d in apps.list_namespaced_daemon_set("nvidia-gpu").items]
    assert {"nvidia-device-plugin", "gpu-feature-discovery", "nvidia-dcgm-exporter"} <= set(names)


def test_the_plugin_stage_ran_after_the_cluster_roles_and_says_why_it_skipped():
    import json
    reports = glob.glob(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "validate-reports", "*.json"))
    assert [os.path.basename(p) for p in reports] == ["mol-k8s-bookworm.json"]
    with open(reports[0]) as handle:
        report = json.load(handle)
    plugin = [s for s in report["stages"] if s["stage"] == "plugin"]
    if os.environ.get("GPUNODE_KUBECONFIG"):
        assert plugin and plugin[0]["status"] in ("pass", "fail")
    else:
        assert plugin == [{"stage": "plugin", "status": "skip", "details": {},
                           "reason": "no kubeconfig given (validate_kubeconfig) and no cluster applied in this run: node capacity not checked"}]
