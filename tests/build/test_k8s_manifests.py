"""The Kubernetes roles' objects for a matrix of variable sets, from the roles' own defaults:
every object valid for Kubernetes 1.29 and the newest schemas kubernetes-validate ships
(strict), what the render mode writes is exactly what apply would send, and checkov's
Kubernetes policies find nothing but the accepted, justified findings
(tests/k8s-accepted-findings.yml). No API server can be installed here: these are
the manifests as the API server would receive them, checked offline."""

import copy
import os

import k8s_checks
import pytest
import yaml

from ansible_collections.gpunode.nvidia.plugins.filter import gpu_cluster as gc
from ansible_collections.gpunode.nvidia.plugins.modules import k8s_render
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_dcgm_exporter as dcgm
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_device_plugin as dp
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_gpu_feature_discovery as gfd
from ansible_collections.gpunode.nvidia.plugins.plugin_utils.role_inputs import _plain_default

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ACCEPTED = os.path.join(ROOT, "tests", "k8s-accepted-findings.yml")
DIGEST = "sha256:" + "0123456789abcdef" * 4
NODES = {"gpu-1": {"node_name": "gpu-1", "gpus": 8, "cdi_enabled": False, "mig_enabled": False, "runtime_name": "nvidia"},
         "gpu-2": {"node_name": "gpu-2", "gpus": 4, "cdi_enabled": False, "mig_enabled": False, "runtime_name": "nvidia"},
         "cpu-1": {"node_name": "cpu-1", "gpus": 0, "cdi_enabled": False, "mig_enabled": False, "runtime_name": None}}


def defaults(role):
    def load(kind):
        with open(os.path.join(ROOT, "roles", role, kind, "main.yml")) as handle:
            return yaml.safe_load(handle) or {}
    role_vars = load("vars")
    prefix = role + "_"
    return dict((k[len(prefix):], _plain_default(v, role_vars)) for k, v in load("defaults").items())


def pinned(image):
    return dict(image, digest=DIGEST)


# name: {role: overrides}; "cluster" overrides gpu_cluster's inputs, "cdi" turns CDI on for every GPU node.
STACKS = {
    "defaults": {},
    "airgapped": {"cluster": {"registry": "registry.example.internal:5000/gpu", "image_pull_secrets": ["mirror-pull"],
                              "image_pull_credentials": ["mirror-cred"]},
                  "credentials": [{"name": "mirror-cred", "registry": "registry.example.internal:5000", "username": "robot",
                                   "password": "not-a-real-password"}],
                  "device_plugin": {"image": "digest"}, "gpu_feature_discovery": {"image": "digest", "nfd_image": "digest"},
                  "dcgm_exporter": {"image": "digest"}},
    "mig_mixed": {"device_plugin": {"configs": {"default": {"mig_strategy": "mixed"}}}, "mig": True},
    "time_slicing_4": {"device_plugin": {"configs": {"default": {}, "ts4": {"time_slicing": {"replicas": 4, "rename_by_default": True}}}},
                       "node_configs": {"gpu-1": "ts4"}},
    "mps_2": {"device_plugin": {"configs": {"default": {"mps": {"replicas": 2}}}}},
    "cdi": {"cdi": True, "device_plugin": {"configs": {"default": {"device_list_strategy": "auto"}}}},
    "render_mode": {"cluster": {"mode": "render", "render_dir": "/srv/gitops/gpu"}},
    "service_monitor": {"dcgm_exporter": {"service_monitor": {"enabled": True, "interval": "30s", "labels": {"release": "prom"}}}},
    "existing_nfd_profiling_off": {"gpu_feature_discovery": {"nfd": "existing"}, "dcgm_exporter": {"profiling": False}},
}


def cluster_inputs(stack):
    nodes = copy.deepcopy(NODES)
    for node in nodes.values():
        node["cdi_enabled"] = bool(stack.get("cdi")) and node["gpus"] > 0
        node["mig_enabled"] = bool(stack.get("mig")) and node["gpus"] > 0
    inputs = defaults("gpu_cluster")
    inputs.update(mode="apply", render_dir="/tmp/unused", kubeconfig="", context="", nodes=nodes)
    inputs.update(stack.get("cluster") or {})
    return inputs


def settings(role, stack):
    found = defaults(role)
    for key, value in (stack.get(role) or {}).items():
        found[key] = pinned(found[key]) if value == "digest" else value
    return found


def build(name):
    """(cluster, {role: objects}, {role: published}) for one stack, as the roles build them."""
    stack = STACKS[name]
    inputs = cluster_inputs(stack)
    assert gc.gpu_cluster_problems(inputs) == []
    cluster = gc.gpu_cluster_settings(inputs)
    objects, published = {"gpu_cluster": gc.gpu_cluster_objects(cluster)["objects"]}, {}
    objects["gpu_cluster"] += gc.gpu_cluster_pull_secrets(stack.get("credentials"), cluster)
    plugin = dict(settings("device_plugin", stack), node_configs=dict(stack.get("node_configs") or {}))
    feature = settings("gpu_feature_discovery", stack)
    exporter = settings("dcgm_exporter", stack)
    for role, module, values in (("device_plugin", dp, plugin), ("gpu_feature_discovery", gfd, feature), ("dcgm_exporter", dcgm, exporter)):
        if role == "gpu_feature_discovery":
            values["device_plugin"] = published["device_plugin"]
        assert module.problems(values, cluster) == [], (name, role)
        objects[role] = module.objects(values, cluster)
        published[role] = module.published(values, cluster)
    return cluster, objects, published


def all_objects(objects):
    return [o for role in ("gpu_cluster", "device_plugin", "gpu_feature_discovery", "dcgm_exporter") for o in objects[role]]


def pod_specs(objects):
    for obj in objects:
        if obj["kind"] in ("DaemonSet", "Deployment"):
            yield obj, obj["spec"]["template"]["spec"]


def containers(spec):
    return list(spec.get("initContainers") or []) + list(spec["containers"])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_every_object_is_valid_for_129_and_the_newest_kubernetes(name):
    _cluster, objects, _published = build(name)
    skipped = k8s_checks.validate_objects(all_objects(objects))
    # Only CRD instances have no schema: the ServiceMonitor, when asked for.
    assert skipped == (["ServiceMonitor"] if name == "service_monitor" else [])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_images_are_pinned_and_mirrored(name):
    cluster, objects, _published = build(name)
    for _obj, spec in pod_specs(all_objects(objects)):
        for container in containers(spec):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1].split("@")[0], image
            if name == "airgapped":
                assert image.startswith("registry.example.internal:5000/gpu/") and image.endswith("@" + DIGEST), image
                assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}, {"name": "mirror-cred"}]
            else:
                assert image.split("/")[0] in ("nvcr.io", "registry.k8s.io"), image
                assert "imagePullSecrets" not in spec
    assert cluster["registry"] == ("registry.example.internal:5000/gpu" if name == "airgapped" else "")


# hostPaths a component must write: the kubelet's device-plugin sockets, GFD's features.d file
# (only without the NodeFeature API), MPS's pipes and shm. Everything else is mounted read-only.
WRITABLE = {("nvidia-device-plugin", "/var/lib/kubelet/device-plugins"), ("nvidia-device-plugin", "/var/run/cdi")}


def test_host_paths_are_read_only_unless_the_component_writes_there():
    for name in sorted(STACKS):
        _cluster, objects, _published = build(name)
        for obj, spec in pod_specs(all_objects(objects)):
            paths = dict((v["name"], v["hostPath"]["path"]) for v in spec.get("volumes") or [] if "hostPath" in v)
            for container in containers(spec):
                for mount in container.get("volumeMounts") or []:
                    if mount["name"] not in paths or mount.get("readOnly"):
                        continue
                    path = paths[mount["name"]]
                    allowed = (obj["metadata"]["name"], path) in WRITABLE or path.startswith("/run/nvidia/mps")
                    assert allowed, "%s: %s mounts %s read-write" % (name, container["name"], path)


def test_capabilities_only_where_a_feature_needs_them():
    for name in sorted(STACKS):
        _cluster, objects, _published = build(name)
        for obj, spec in pod_specs(all_objects(objects)):
            for container in containers(spec):
                context = container.get("securityContext") or {}
                if context.get("privileged"):
                    # Only MPS's control daemon (it mounts the shm and runs the MPS server) is privileged.
                    assert name == "mps_2" and "mps" in obj["metadata"]["name"], (name, obj["metadata"]["name"], container["name"])
                    continue
                assert context.get("allowPrivilegeEscalation") is False, (name, container["name"])
                assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
                added = context["capabilities"].get("add") or []
                if added:
                    assert added == ["SYS_ADMIN"], added
                    exporter_profiling = obj["metadata"]["name"] == "nvidia-dcgm-exporter" and name != "existing_nfd_profiling_off"
                    assert exporter_profiling or name == "mig_mixed", (name, obj["metadata"]["name"], container["name"])


def test_gpu_pods_tolerate_the_gpu_taint_and_require_a_gpu_node():
    _cluster, objects, _published = build("defaults")
    gpu_workloads = [o for o, _s in pod_specs(all_objects(objects)) if not o["metadata"]["name"].startswith("nfd-")]
    assert len(gpu_workloads) >= 3
    for obj in gpu_workloads:
        spec = obj["spec"]["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"], obj["metadata"]["name"]
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        keys = sorted(t["matchExpressions"][0]["key"] for t in terms)
        assert keys == ["feature.node.kubernetes.io/pci-10de.present", "nvidia.com/gpu.present"], obj["metadata"]["name"]
        assert spec["priorityClassName"] == "system-node-critical"
        assert spec["runtimeClassName"] == "nvidia"


def test_rbac_is_least_privilege():
    _cluster, objects, _published = build("defaults")
    for obj in all_objects(objects):
        if obj["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in obj["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], obj["metadata"]["name"]
            assert "secrets" not in rule["resources"], obj["metadata"]["name"]
            assert not set(rule["verbs"]) & {"delete", "deletecollection", "escalate", "bind", "impersonate"} or (
                obj["kind"] == "Role" and rule["resources"] == ["nodefeatures"]), (obj["metadata"]["name"], rule)
        if obj["kind"] == "ClusterRole":
            resources = set(r for rule in obj["rules"] for r in rule["resources"])
            # Cluster-wide reads of nodes (the config-manager, GFD, NFD) and NFD's own cluster-scoped kinds.
            assert resources <= {"nodes", "nodes/status", "namespaces", "nodefeatures", "nodefeaturerules", "nodefeaturegroups",
                                 "nodefeaturegroups/status"}, (obj["metadata"]["name"], resources)
    # The exporter reads no API unless pod labels are asked for.
    assert not [o for o in objects["dcgm_exporter"] if o["kind"] in ("ClusterRole", "Role")]


def test_a_config_change_rolls_the_plugin_and_gfd_and_nothing_else():
    def annotations(objects):
        return dict((o["metadata"]["name"], (o["spec"]["template"]["metadata"].get("annotations") or {}).get("gpunode.nvidia/config-checksum"))
                    for o, _s in pod_specs(all_objects(objects)))
    before = annotations(build("defaults")[1])
    after = annotations(build("mps_2")[1])
    assert before["nvidia-device-plugin"] != after["nvidia-device-plugin"]
    assert before["gpu-feature-discovery"] != after["gpu-feature-discovery"]
    assert before["nvidia-dcgm-exporter"] == after["nvidia-dcgm-exporter"]
    assert annotations(build("defaults")[1]) == before


def test_plugin_published_fact_says_what_validate_must_count():
    _cluster, _objects, published = build("time_slicing_4")
    plugin = published["device_plugin"]
    assert plugin["node_configs"] == {"gpu-1": "ts4"}
    assert (plugin["configs"]["ts4"]["replicas"], plugin["configs"]["ts4"]["resource"]) == (4, "nvidia.com/gpu.shared")
    assert (plugin["configs"]["default"]["replicas"], plugin["configs"]["default"]["resource"]) == (1, "nvidia.com/gpu")
    assert "nvidia.com/gpu.product" in published["gpu_feature_discovery"]["labels"]


def render(objects, dest):
    """What gpunode.nvidia.k8s_render writes for each role, written as the module writes it."""
    for role, items in objects.items():
        _dirs, files, _stale = k8s_render.plan(items, str(dest), role.replace("_", "-"), "0600", True)
        for item in files:
            os.makedirs(os.path.dirname(item.path), exist_ok=True)
            with open(item.path, "w") as handle:
                handle.write(item.text)


@pytest.mark.parametrize("name", ["defaults", "render_mode", "mps_2"])
def test_render_writes_exactly_the_objects_apply_sends(name, tmp_path):
    _cluster, objects, _published = build(name)
    render(objects, tmp_path)
    with open(tmp_path / "kustomization.yaml") as handle:
        top = yaml.safe_load(handle)
    assert sorted(top["resources"]) == sorted(role.replace("_", "-") for role in objects)
    for role, items in objects.items():
        directory = tmp_path / role.replace("_", "-")
        with open(directory / "kustomization.yaml") as handle:
            listed = yaml.safe_load(handle)["resources"]
        loaded = []
        for file_name in listed:
            with open(directory / file_name) as handle:
                loaded.append(yaml.safe_load(handle))
        assert loaded == items, role


def test_checkov_finds_only_the_accepted_findings(tmp_path):
    accepted = k8s_checks.accepted_findings(ACCEPTED)
    for name in sorted(STACKS):
        render(build(name)[1], tmp_path / name)
    findings = k8s_checks.checkov_findings(str(tmp_path))
    assert findings, "checkov reported nothing at all: it did not read the manifests"
    k8s_checks.assert_findings_accepted(findings, accepted)
