"""The pieces every Kubernetes role builds its objects from."""

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko
from .k8s_cluster import CLUSTER

IMAGE = {"registry": "nvcr.io/nvidia", "repository": "k8s-device-plugin", "tag": "v0.20.0", "digest": ""}
DIGEST = "sha256:" + "ab" * 32


def test_image_ref_uses_the_image_registry_unless_the_cluster_mirrors_every_image():
    assert ko.image_ref(CLUSTER, IMAGE) == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
    mirrored = dict(CLUSTER, registry="registry.local:5000/nvidia/")
    assert ko.image_ref(mirrored, dict(IMAGE, digest=DIGEST)) == "registry.local:5000/nvidia/k8s-device-plugin:v0.20.0@" + DIGEST


def test_image_problems_refuse_unpinned_images():
    assert ko.image_problems("x_image", IMAGE) == []
    assert "x_image.tag is empty" in ko.image_problems("x_image", dict(IMAGE, tag=""))[0]
    assert "latest" in ko.image_problems("x_image", dict(IMAGE, tag="latest"))[0]
    assert "give the tag" in ko.image_problems("x_image", dict(IMAGE, repository="k8s-device-plugin:v1"))[0]
    assert "digest" in ko.image_problems("x_image", dict(IMAGE, digest="sha256:short"))[0]
    assert ko.image_problems("x_image", dict(IMAGE, digest=DIGEST)) == []
    assert "must be a dict" in ko.image_problems("x_image", "nvcr.io/x:1")[0]


def test_affinity_selects_gpu_nodes_by_either_label_or_one():
    terms = ko.node_affinity(CLUSTER)["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [t["matchExpressions"][0]["key"] for t in terms] == [ko.NFD_PCI_NVIDIA, ko.GPU_PRESENT]
    only = ko.node_affinity(dict(CLUSTER, node_selection="gpu-present"))
    assert len(only["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]) == 1


def test_daemonset_rolls_on_config_change_only():
    spec = ko.pod_spec(CLUSTER, "sa", [{"name": "c", "image": "i:1"}])
    first = ko.daemonset("ds", CLUSTER, "comp", spec, checksum_of={"a": 1})
    same = ko.daemonset("ds", CLUSTER, "comp", spec, checksum_of={"a": 1})
    other = ko.daemonset("ds", CLUSTER, "comp", spec, checksum_of={"a": 2})
    key = ko.CHECKSUM_ANNOTATION
    assert first == same
    assert first["spec"]["template"]["metadata"]["annotations"][key] != other["spec"]["template"]["metadata"]["annotations"][key]
    assert first["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    assert first["spec"]["selector"]["matchLabels"].items() <= first["spec"]["template"]["metadata"]["labels"].items()


def test_pod_spec_takes_scheduling_and_pull_secrets_from_the_cluster():
    cluster = dict(CLUSTER, image_pull_secrets=["mirror-pull"])
    spec = ko.pod_spec(cluster, "sa", [])
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}]
    assert "runtimeClassName" not in ko.pod_spec(dict(CLUSTER, use_runtime_class=False), "sa", [])
    assert "runtimeClassName" not in ko.pod_spec(CLUSTER, "sa", [], runtime_class=False)


def test_cluster_objects_and_node_labels():
    kinds = [o["kind"] for o in ko.cluster_objects(CLUSTER)]
    assert kinds == ["Namespace", "RuntimeClass"]
    assert [o["kind"] for o in ko.cluster_objects(dict(CLUSTER, runtime_class=""))] == ["Namespace"]
    patches = ko.node_label_patches({"gpu-1": {"gpus": 8, "config": "ts4"}, "cpu-1": {"gpus": 0}})
    assert patches == [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "labels": {
        ko.GPU_PRESENT: "true", ko.CONFIG_LABEL: "ts4"}}}]


def test_security_context_drops_everything_it_does_not_add():
    assert ko.security_context() == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert ko.security_context(add=["SYS_ADMIN"])["capabilities"]["add"] == ["SYS_ADMIN"]
    assert ko.security_context(privileged=True) == {"privileged": True}


def test_every_pod_gets_the_runtime_default_seccomp_profile():
    spec = ko.pod_spec(CLUSTER, "sa", [])
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["securityContext"]["seccompProfile"] is not ko.POD_SECURITY["seccompProfile"]
