"""GPU Feature Discovery's objects (and the NFD the role deploys): what each case gets, and what is refused."""

import os

import pytest
import yaml

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_gpu_feature_discovery as gfd
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_nfd as nfd
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

from ...conftest import ROOT
from .k8s_cluster import CLUSTER

DEFAULTS = yaml.safe_load(open(os.path.join(ROOT, "roles", "gpu_feature_discovery", "defaults", "main.yml")))
SETTINGS = dict({k[len(gfd.PREFIX):]: v for k, v in DEFAULTS.items()}, device_plugin={})
DIGEST = "sha256:" + "0a" * 32
TIME_SLICING = {"config_map": "nvidia-device-plugin-configs", "default_config": "ts4",
                "config_checksum": "c" * 64, "mig_strategy": "none", "mig_strategies": ["none"]}

# Settings overrides per case (the lead's matrix test validates every object of every case);
# CLUSTER_OVERRIDES: what a case changes in the cluster fact.
MATRIX = {
    "defaults": {},
    "nfd_existing": {"nfd": "existing"},
    "airgapped": {
        "image": dict(SETTINGS["image"], digest=DIGEST),
        "nfd_image": dict(SETTINGS["nfd_image"], digest="sha256:" + "1b" * 32),
    },
    "mig_mixed": {"mig_strategy": "mixed"},
    "mig_auto_from_device_plugin": {"device_plugin": {"mig_strategy": "single"}},
    "device_plugin_time_slicing": {"device_plugin": TIME_SLICING},
    "device_plugin_configs_with_mig": {"device_plugin": dict(TIME_SLICING, mig_strategies=["none", "mixed"])},
    "features_file": {"use_node_feature_api": False},
    "features_file_existing_nfd": {"use_node_feature_api": False, "nfd": "existing",
                                   "features_dir": "/var/lib/nfd/features.d"},
    "driver_container": {"driver_root": "/run/nvidia/driver", "sleep_interval": "5m"},
}
CLUSTER_OVERRIDES = {
    "airgapped": {"registry": "registry.local:5000/mirror", "image_pull_secrets": ["mirror-pull"]},
    "mig_mixed": {"mig_enabled": True},
}


def case(name):
    return dict(SETTINGS, **MATRIX[name]), dict(CLUSTER, **CLUSTER_OVERRIDES.get(name, {}))


def build(name):
    settings, cluster = case(name)
    assert gfd.problems(settings, cluster) == []
    return {(o["kind"], o["metadata"]["name"]): o for o in gfd.objects(settings, cluster)}


def gfd_pod(objects):
    return objects[("DaemonSet", "gpu-feature-discovery")]["spec"]["template"]["spec"]


def container(pod, name="gpu-feature-discovery"):
    return next(c for c in pod["containers"] if c["name"] == name)


def env(c):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def mounts(c):
    return {m["mountPath"]: m for m in c["volumeMounts"]}


def host_paths(pod):
    return {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_every_case_builds_without_problems_and_deterministically(name):
    settings, cluster = case(name)
    assert gfd.problems(settings, cluster) == []
    assert gfd.objects(settings, cluster) == gfd.objects(settings, cluster)
    kinds = [o["kind"] for o in gfd.objects(settings, cluster)]
    workloads = [i for i, k in enumerate(kinds) if k in ("DaemonSet", "Deployment")]
    assert workloads == list(range(len(kinds) - len(workloads), len(kinds))), "workloads come last"
    assert kinds[-1] == "DaemonSet"


def test_defaults_deploy_nfd_and_gfd_uses_the_node_feature_api():
    objects = build("defaults")
    assert [k for k in objects if k[0] == "CustomResourceDefinition"] == [
        ("CustomResourceDefinition", "nodefeatures.nfd.k8s-sigs.io"),
        ("CustomResourceDefinition", "nodefeaturegroups.nfd.k8s-sigs.io"),
        ("CustomResourceDefinition", "nodefeaturerules.nfd.k8s-sigs.io")]
    pod = gfd_pod(objects)
    c = container(pod)
    assert c["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
    assert c["command"] == ["gpu-feature-discovery"]
    e = env(c)
    assert e["GFD_USE_NODE_FEATURE_API"] == "true"
    assert e["GFD_SLEEP_INTERVAL"] == "60s"
    assert e["GFD_MIG_STRATEGY"] == "none"
    assert e["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert e["NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert e["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "GFD_OUTPUT_FILE" not in e and "NVIDIA_MIG_MONITOR_DEVICES" not in e and "CONFIG_FILE" not in e
    assert host_paths(pod) == {"host-sys": "/sys"}
    assert mounts(c)["/sys"]["readOnly"] is True
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"] == CLUSTER["tolerations"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert "shareProcessNamespace" not in pod and "initContainers" not in pod
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_gfd_is_not_privileged_and_adds_sys_admin_only_with_mig():
    plain = container(gfd_pod(build("defaults")))["securityContext"]
    assert plain == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
    for name in ("mig_mixed", "mig_auto_from_device_plugin", "device_plugin_configs_with_mig"):
        c = container(gfd_pod(build(name)))
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}, name
        assert "privileged" not in c["securityContext"]
        assert env(c)["NVIDIA_MIG_MONITOR_DEVICES"] == "all", name
    assert "add" not in container(gfd_pod(build("device_plugin_time_slicing")))["securityContext"]["capabilities"]


def test_mig_strategy_auto_follows_the_device_plugin():
    assert env(container(gfd_pod(build("mig_auto_from_device_plugin"))))["GFD_MIG_STRATEGY"] == "single"
    assert env(container(gfd_pod(build("mig_mixed"))))["GFD_MIG_STRATEGY"] == "mixed"
    # With the device plugin's ConfigMap each node's chosen configuration decides: no override.
    assert "GFD_MIG_STRATEGY" not in env(container(gfd_pod(build("device_plugin_time_slicing"))))
    settings, cluster = case("device_plugin_time_slicing")
    assert "GFD_MIG_STRATEGY" in env(container(gfd_pod({("DaemonSet", "gpu-feature-discovery"): gfd.daemonset(
        dict(settings, mig_strategy="none"), cluster)})))


def test_rbac_is_only_what_the_pods_call():
    objects = build("defaults")
    role = objects[("Role", "gpu-feature-discovery")]
    assert role["metadata"]["namespace"] == "nvidia-gpu"
    assert role["rules"] == [
        {"apiGroups": ["nfd.k8s-sigs.io"], "resources": ["nodefeatures"], "verbs": ["get", "list", "watch", "create", "update"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    assert ("ClusterRole", "gpu-feature-discovery") not in objects
    assert gfd_pod(objects)["serviceAccountName"] == "gpu-feature-discovery"
    with_configs = build("device_plugin_time_slicing")
    assert with_configs[("ClusterRole", "gpu-feature-discovery")]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    binding = with_configs[("ClusterRoleBinding", "gpu-feature-discovery")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpu-feature-discovery", "namespace": "nvidia-gpu"}]
    # A features.d file and no ConfigMap: no API access at all, no token.
    alone = build("features_file_existing_nfd")
    assert list(alone) == [("DaemonSet", "gpu-feature-discovery")]
    pod = gfd_pod(alone)
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    # A features.d file with the device plugin's ConfigMap: nodes only, no NodeFeature rules.
    settings, cluster = case("device_plugin_time_slicing")
    found = {(o["kind"], o["metadata"]["name"]) for o in gfd.objects(dict(settings, use_node_feature_api=False), cluster)}
    assert ("ClusterRole", "gpu-feature-discovery") in found and ("Role", "gpu-feature-discovery") not in found


def test_features_file_mode_writes_into_the_features_dir():
    pod = gfd_pod(build("features_file"))
    c = container(pod)
    e = env(c)
    assert e["GFD_USE_NODE_FEATURE_API"] == "false"
    assert e["GFD_OUTPUT_FILE"] == "/etc/kubernetes/node-feature-discovery/features.d/gfd"
    assert "NAMESPACE" not in e and "POD_NAME" not in e
    out = mounts(c)["/etc/kubernetes/node-feature-discovery/features.d"]
    assert "readOnly" not in out
    volume = next(v for v in pod["volumes"] if v["name"] == out["name"])
    assert volume["hostPath"] == {"path": "/etc/kubernetes/node-feature-discovery/features.d", "type": "DirectoryOrCreate"}
    # No NodeFeature rules without the API.
    assert ("Role", "gpu-feature-discovery") not in build("features_file")
    other = gfd_pod(build("features_file_existing_nfd"))
    assert host_paths(other)["output-dir"] == "/var/lib/nfd/features.d"


def test_the_device_plugin_configmap_through_config_manager():
    pod = gfd_pod(build("device_plugin_time_slicing"))
    assert pod["shareProcessNamespace"] is True
    init = pod["initContainers"]
    assert [c["name"] for c in init] == ["config-manager-init"]
    sidecar = container(pod, "config-manager")
    assert env(sidecar)["PROCESS_TO_SIGNAL"] == "gpu-feature-discovery"
    assert env(sidecar)["DEFAULT_CONFIG"] == "ts4"
    assert env(init[0])["ONESHOT"] == "true"
    assert all(c["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0" for c in init + pod["containers"])
    assert all(c["resources"]["requests"] for c in init + pod["containers"])
    c = container(pod)
    assert env(c)["CONFIG_FILE"] == "/config/config.yaml"
    assert mounts(c)["/config"]["readOnly"] is True
    assert {"name": "available-configs", "configMap": {"name": "nvidia-device-plugin-configs"}} in pod["volumes"]


def test_checksum_follows_the_device_plugin_config_only():
    def annotation(device_plugin, **over):
        settings, cluster = case("defaults")
        ds = gfd.daemonset(dict(settings, device_plugin=device_plugin, **over), cluster)
        return ds["spec"]["template"]["metadata"].get("annotations", {}).get(ko.CHECKSUM_ANNOTATION)
    first = annotation(TIME_SLICING)
    assert first and first == annotation(dict(TIME_SLICING))
    assert first == annotation(TIME_SLICING, sleep_interval="5m")
    assert first != annotation(dict(TIME_SLICING, config_checksum="d" * 64))
    assert annotation({}) is None


def test_airgapped_images_come_from_the_mirror_pinned_by_digest():
    objects = build("airgapped")
    images = [c["image"] for o in objects.values() if o["kind"] in ("DaemonSet", "Deployment")
              for c in o["spec"]["template"]["spec"]["containers"]]
    assert sorted(set(images)) == [
        "registry.local:5000/mirror/k8s-device-plugin:v0.20.0@" + DIGEST,
        "registry.local:5000/mirror/node-feature-discovery:v0.19.0@sha256:" + "1b" * 32]
    for o in objects.values():
        if o["kind"] in ("DaemonSet", "Deployment"):
            assert o["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "mirror-pull"}], o["metadata"]["name"]
    settings, cluster = case("airgapped")
    published = gfd.published(settings, cluster)
    assert published["image"].endswith("@" + DIGEST) and published["nfd_image"].startswith("registry.local:5000/mirror/")


def test_driver_root_is_mounted_read_only_where_given():
    c = container(gfd_pod(build("driver_container")))
    assert mounts(c)["/driver-root"]["readOnly"] is True
    assert env(c)["DRIVER_ROOT_CTR_PATH"] == "/driver-root"
    assert env(c)["GFD_SLEEP_INTERVAL"] == "5m"
    assert "/driver-root" not in mounts(container(gfd_pod(build("defaults"))))


def test_nfd_existing_deploys_no_nfd_object():
    objects = build("nfd_existing")
    assert not [k for k in objects if k[1].startswith("nfd") or k[0] == "CustomResourceDefinition"]
    settings, cluster = case("nfd_existing")
    published = gfd.published(settings, cluster)
    assert published["nfd"] == "existing" and published["nfd_image"] is None
    assert published["daemonsets"] == ["gpu-feature-discovery"] and published["deployments"] == []
    assert "NodeFeature API" in published["notes"][0]
    settings, cluster = case("features_file_existing_nfd")
    assert "/var/lib/nfd/features.d/gfd" in gfd.published(settings, cluster)["notes"][0]


def test_nfd_master_publishes_nvidia_labels_with_least_privilege():
    objects = build("defaults")
    conf = yaml.safe_load(objects[("ConfigMap", "nfd-master-conf")]["data"]["nfd-master.conf"])
    assert conf == {"extraLabelNs": ["nvidia.com"]}
    deployment = objects[("Deployment", "nfd-master")]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert "nodeAffinity" in pod["affinity"] and "requiredDuringSchedulingIgnoredDuringExecution" not in pod["affinity"]["nodeAffinity"]
    c = pod["containers"][0]
    assert c["image"] == "registry.k8s.io/nfd/node-feature-discovery:v0.19.0" and c["command"] == ["nfd-master"]
    assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert all(m["readOnly"] for m in c["volumeMounts"])
    rules = objects[("ClusterRole", "nfd-master")]["rules"]
    verbs = {(g, r): v for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in [rule["verbs"]]}
    assert verbs[("", "nodes")] == ["get", "list", "patch", "update"]
    assert verbs[("nfd.k8s-sigs.io", "nodefeatures")] == ["get", "list", "watch"]
    assert verbs[("nfd.k8s-sigs.io", "nodefeaturegroups/status")] == ["patch", "update"]
    assert not any("create" in v or "delete" in v for v in verbs.values())
    assert ("coordination.k8s.io", "leases") not in verbs


def test_nfd_worker_runs_everywhere_reading_the_host_read_only():
    objects = build("defaults")
    ds = objects[("DaemonSet", "nfd-worker")]
    pod = ds["spec"]["template"]["spec"]
    assert "affinity" not in pod and "runtimeClassName" not in pod
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert CLUSTER["tolerations"][0] in pod["tolerations"]
    c = pod["containers"][0]
    assert all(m["readOnly"] for m in c["volumeMounts"])
    assert host_paths(pod) == {"host-boot": "/boot", "host-os-release": "/etc/os-release", "host-sys": "/sys",
                               "host-usr-lib": "/usr/lib", "host-lib": "/lib",
                               "features-d": "/etc/kubernetes/node-feature-discovery/features.d"}
    conf = yaml.safe_load(objects[("ConfigMap", "nfd-worker-conf")]["data"]["nfd-worker.conf"])
    assert conf["sources"]["pci"]["deviceLabelFields"] == ["vendor"]
    assert {"0300", "0302"} <= set(conf["sources"]["pci"]["deviceClassWhitelist"])
    role = objects[("Role", "nfd-worker")]
    assert role["metadata"]["namespace"] == "nvidia-gpu"
    assert role["rules"][0] == {"apiGroups": ["nfd.k8s-sigs.io"], "resources": ["nodefeatures"],
                                "verbs": ["create", "get", "update", "delete"]}
    assert objects[("ClusterRole", "nfd-worker")]["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]
    env_names = {e["name"] for e in c["env"]}
    assert {"NODE_NAME", "POD_NAME", "POD_UID", "KUBERNETES_NAMESPACE"} <= env_names


def test_nfd_config_checksums_change_with_the_configuration_only():
    before = nfd.worker(CLUSTER, SETTINGS["nfd_image"])[1]["spec"]["template"]["metadata"]["annotations"]
    again = nfd.worker(CLUSTER, SETTINGS["nfd_image"])[1]["spec"]["template"]["metadata"]["annotations"]
    assert before == again
    original = nfd.PCI_CLASSES[:]
    try:
        nfd.PCI_CLASSES.append("12")
        after = nfd.worker(CLUSTER, SETTINGS["nfd_image"])[1]["spec"]["template"]["metadata"]["annotations"]
    finally:
        nfd.PCI_CLASSES[:] = original
    assert before[ko.CHECKSUM_ANNOTATION] != after[ko.CHECKSUM_ANNOTATION]


def test_crds_have_upstream_names_scopes_and_structural_schemas():
    by_name = {c["metadata"]["name"]: c["spec"] for c in nfd.crds(CLUSTER)}
    assert {n: (s["scope"], s["names"]["kind"]) for n, s in by_name.items()} == {
        "nodefeatures.nfd.k8s-sigs.io": ("Namespaced", "NodeFeature"),
        "nodefeaturegroups.nfd.k8s-sigs.io": ("Namespaced", "NodeFeatureGroup"),
        "nodefeaturerules.nfd.k8s-sigs.io": ("Cluster", "NodeFeatureRule")}

    def structural(schema, path="schema"):
        assert "type" in schema, path
        for key, sub in schema.get("properties", {}).items():
            structural(sub, path + "." + key)
        if isinstance(schema.get("additionalProperties"), dict):
            structural(schema["additionalProperties"], path + ".*")
        if "items" in schema:
            structural(schema["items"], path + "[]")
    for name, spec in by_name.items():
        (version,) = spec["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        structural(version["schema"]["openAPIV3Schema"], name)
    labels = by_name["nodefeatures.nfd.k8s-sigs.io"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["labels"]
    assert labels == {"type": "object", "additionalProperties": {"type": "string"}}
    assert by_name["nodefeaturegroups.nfd.k8s-sigs.io"]["versions"][0]["subresources"] == {"status": {}}


def test_published_names_the_labels_validate_checks():
    settings, cluster = case("defaults")
    published = gfd.published(settings, cluster)
    assert published["labels"] == ["nvidia.com/cuda.driver-version.full", "nvidia.com/gpu.count",
                                   "nvidia.com/gpu.memory", "nvidia.com/gpu.product"]
    assert published["nfd"] == "deployed" and published["daemonsets"] == ["gpu-feature-discovery", "nfd-worker"]
    assert published["node_feature_api"] is True and published["features_dir"] is None
    settings, cluster = case("mig_mixed")
    assert "nvidia.com/mig.strategy" in gfd.published(settings, cluster)["labels"]
    settings, cluster = case("device_plugin_time_slicing")
    published = gfd.published(settings, cluster)
    assert published["mig_strategy_per_node"] is True and published["config_map"] == "nvidia-device-plugin-configs"
    settings, cluster = case("defaults")
    assert "MIG is on" in gfd.published(dict(settings, mig_strategy="none"), dict(cluster, mig_enabled=True))["notes"][0]


@pytest.mark.parametrize("over, message", [
    ({"nfd": "helm"}, "gpu_feature_discovery_nfd is 'helm': auto, deploy"),
    ({"sleep_interval": "60"}, "gpu_feature_discovery_sleep_interval is '60'"),
    ({"sleep_interval": "0s"}, "above zero"),
    ({"sleep_interval": "1 m"}, "a Go duration"),
    ({"mig_strategy": "MIXED"}, "gpu_feature_discovery_mig_strategy is 'MIXED'"),
    ({"use_node_feature_api": "yes"}, "gpu_feature_discovery_use_node_feature_api is 'yes'"),
    ({"use_node_feature_api": False, "features_dir": "features.d"}, "gpu_feature_discovery_features_dir is 'features.d'"),
    ({"use_node_feature_api": False, "features_dir": "/var/lib/nfd/features.d"}, "the NFD this role deploys reads"),
    ({"driver_root": "run/nvidia/driver"}, "gpu_feature_discovery_driver_root"),
    ({"resources": {"limits": {"memory": "1Gi"}}}, "gpu_feature_discovery_resources must be a dict with requests"),
    ({"image": dict(SETTINGS["image"], tag="latest")}, "gpu_feature_discovery_image.tag is latest"),
    ({"nfd_image": dict(SETTINGS["nfd_image"], tag="")}, "gpu_feature_discovery_nfd_image.tag is empty"),
    ({"nfd_image": dict(SETTINGS["nfd_image"], digest="sha256:abc")}, "gpu_feature_discovery_nfd_image.digest"),
])
def test_bad_input_is_refused_naming_the_variable(over, message):
    found = gfd.problems(dict(SETTINGS, **over), CLUSTER)
    assert len(found) == 1 and message in found[0], found


def test_good_durations_and_an_unused_nfd_image_pass():
    for interval in ("60s", "5m", "1h30m", "1.5h", "500ms"):
        assert gfd.problems(dict(SETTINGS, sleep_interval=interval), CLUSTER) == [], interval
    assert gfd.problems(dict(SETTINGS, nfd="existing", nfd_image={}), CLUSTER) == []


def test_nfd_auto_uses_a_cluster_nfd_that_is_not_ours():
    from ansible_collections.gpunode.nvidia.plugins.filter.gpu_feature_discovery import gpu_feature_discovery_nfd as choose
    theirs = {"resources": [{"metadata": {"name": "nodefeatures.nfd.k8s-sigs.io", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}]}
    ours = {"resources": [{"metadata": {"name": "nodefeatures.nfd.k8s-sigs.io", "labels": {"app.kubernetes.io/managed-by": "gpunode.nvidia"}}}]}
    assert choose("auto", theirs) == "existing"
    assert choose("auto", ours) == "deploy"
    assert choose("auto", {"resources": []}) == "deploy"
    assert choose("auto", {"skipped": True}) == "deploy"
    assert choose("existing", {}) == "existing"
