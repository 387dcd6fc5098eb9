"""The DCGM exporter's objects: pinned image, root without more capabilities than profiling needs, counters that roll."""

import copy
import os

import pytest
import yaml

from ansible_collections.gpunode.nvidia.plugins.filter import dcgm_exporter as filters
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_dcgm_exporter as dx
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

from ...conftest import ROOT
from .k8s_cluster import CLUSTER

ROLE = os.path.join(ROOT, "roles", "dcgm_exporter")
DIGEST = "sha256:" + "cd" * 32

# Every variable set the role takes: {case: settings overrides}; the matrix test validates each
# case's objects (kubernetes-validate strict, checkov). MATRIX_CLUSTER: the cluster overrides a case needs.
MATRIX = {
    "defaults": {},
    "airgapped": {"image": {"registry": "registry.local:5000/nvidia/k8s", "repository": "dcgm-exporter",
                            "tag": "4.6.0-4.8.3-distroless", "digest": DIGEST}},
    "profiling_off": {"profiling": False},
    "service_monitor": {"service_monitor": {"enabled": True, "interval": "30s", "labels": {"release": "kube-prometheus"},
                                            "honor_labels": True}},
    "pod_labels": {"pod_labels": True},
    "extra_counters": {"extra_counters": [
        {"field": "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "type": "counter", "help": "Double-bit ECC errors since the driver loaded"},
        {"field": "DCGM_FI_PROF_SM_ACTIVE", "type": "gauge", "help": "Fraction of cycles an SM had a warp resident"},
        {"field": "DCGM_FI_DEV_SERIAL", "type": "label", "help": "Board serial number"},
    ]},
    "remote_hostengine": {"remote_hostengine": "localhost:5555", "port": 9500,
                          "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}},
}
MATRIX_CLUSTER = {
    "airgapped": {"registry": "mirror.example.com:5000/nvidia", "image_pull_secrets": ["mirror-pull"]},
}


def load(*parts):
    with open(os.path.join(ROLE, *parts)) as handle:
        return yaml.safe_load(handle)


def defaults():
    found = {k[len(dx.PREFIX):]: v for k, v in load("defaults", "main.yml").items()}
    found["counters"] = load("vars", "main.yml")["_dcgm_exporter_default_counters"]
    return found


def settings(**overrides):
    found = defaults()
    found.update(copy.deepcopy(overrides))
    return found


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def exporter(objects):
    (ds,) = by_kind(objects, "DaemonSet")
    return ds, ds["spec"]["template"]["spec"], ds["spec"]["template"]["spec"]["containers"][0]


def env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def counter_lines(objects):
    (cm,) = by_kind(objects, "ConfigMap")
    text = cm["data"][dx.COUNTERS_KEY]
    return [line for line in text.splitlines() if line and not line.startswith("#")]


UPSTREAM_DEFAULT_ON = {
    # etc/default-counters.csv of NVIDIA/dcgm-exporter: the uncommented lines, field -> type.
    "DCGM_FI_DEV_SM_CLOCK": "gauge", "DCGM_FI_DEV_MEM_CLOCK": "gauge", "DCGM_FI_DEV_MEMORY_TEMP": "gauge",
    "DCGM_FI_DEV_GPU_TEMP": "gauge", "DCGM_FI_DEV_POWER_USAGE": "gauge", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "counter",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": "counter", "DCGM_FI_DEV_GPU_UTIL": "gauge", "DCGM_FI_DEV_MEM_COPY_UTIL": "gauge",
    "DCGM_FI_DEV_ENC_UTIL": "gauge", "DCGM_FI_DEV_DEC_UTIL": "gauge", "DCGM_FI_DEV_XID_ERRORS": "gauge",
    "DCGM_FI_DEV_FB_FREE": "gauge", "DCGM_FI_DEV_FB_USED": "gauge", "DCGM_FI_DEV_FB_RESERVED": "gauge",
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": "gauge", "DCGM_FI_DEV_VGPU_LICENSE_STATUS": "gauge",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": "counter", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": "counter",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "gauge", "DCGM_FI_DRIVER_VERSION": "label",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "gauge", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "gauge", "DCGM_FI_PROF_DRAM_ACTIVE": "gauge",
    "DCGM_FI_PROF_PCIE_TX_BYTES": "gauge", "DCGM_FI_PROF_PCIE_RX_BYTES": "gauge",
}


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_matrix_case_is_accepted_and_builds(case):
    cluster = dict(CLUSTER, **MATRIX_CLUSTER.get(case, {}))
    assert dx.problems(settings(**MATRIX[case]), cluster) == []
    objects = dx.objects(settings(**MATRIX[case]), cluster)
    assert objects == dx.objects(settings(**MATRIX[case]), cluster)  # deterministic
    kinds = [o["kind"] for o in objects]
    assert kinds.index("ServiceAccount") < kinds.index("ConfigMap") < kinds.index("DaemonSet") < kinds.index("Service")
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == cluster["namespace"]


def test_default_counters_are_upstreams_default_on_set_with_its_types():
    data = load("vars", "main.yml")["_dcgm_exporter_default_counters"]
    assert {c["field"]: c["type"] for c in data} == UPSTREAM_DEFAULT_ON
    assert load("defaults", "main.yml")["dcgm_exporter_counters"] == "{{ _dcgm_exporter_default_counters }}"
    lines = counter_lines(dx.objects(settings(), CLUSTER))
    assert len(lines) == len(UPSTREAM_DEFAULT_ON)
    assert all(len(line.split(",")) == 3 for line in lines)  # the exporter's CSV reader wants exactly three fields
    assert lines[0] == "DCGM_FI_DEV_SM_CLOCK, gauge, Streaming multiprocessor clock in MHz"


def test_image_is_pinned_and_a_cluster_mirror_replaces_its_registry():
    objects = dx.objects(settings(), CLUSTER)
    assert exporter(objects)[2]["image"] == "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless"
    cluster = dict(CLUSTER, **MATRIX_CLUSTER["airgapped"])
    airgapped = dx.objects(settings(**MATRIX["airgapped"]), cluster)
    _unused, spec, container = exporter(airgapped)
    assert container["image"] == "mirror.example.com:5000/nvidia/dcgm-exporter:4.6.0-4.8.3-distroless@" + DIGEST
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}]
    own = dx.objects(settings(**MATRIX["airgapped"]), CLUSTER)
    assert exporter(own)[2]["image"] == "registry.local:5000/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless@" + DIGEST
    assert dx.published(settings(**MATRIX["airgapped"]), cluster)["image"] == container["image"]


def test_scheduling_comes_from_the_cluster():
    _unused, spec, _unused = exporter(dx.objects(settings(), CLUSTER))
    assert spec["tolerations"] == CLUSTER["tolerations"]
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["affinity"] == ko.node_affinity(CLUSTER)
    _unused, plain, _unused = exporter(dx.objects(settings(), dict(CLUSTER, use_runtime_class=False, node_selection="gpu-present")))
    assert "runtimeClassName" not in plain
    terms = plain["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": ko.GPU_PRESENT, "operator": "In", "values": ["true"]}]}]


def test_root_with_sys_admin_only_while_profiling():
    _unused, _unused, container = exporter(dx.objects(settings(), CLUSTER))
    context = container["securityContext"]
    assert context["runAsUser"] == 0 and context["runAsNonRoot"] is False
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    assert "privileged" not in context
    _unused, spec, _unused = exporter(dx.objects(settings(), CLUSTER))
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    _unused, _unused, off = exporter(dx.objects(settings(profiling=False), CLUSTER))
    assert off["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert off["securityContext"]["runAsUser"] == 0


def test_profiling_off_drops_the_prof_fields_and_refuses_one_added():
    lines = counter_lines(dx.objects(settings(profiling=False), CLUSTER))
    assert lines and not [line for line in lines if line.startswith("DCGM_FI_PROF_")]
    assert "DCGM_FI_DRIVER_VERSION, label, NVIDIA driver version" in lines
    published = dx.published(settings(profiling=False), CLUSTER)
    assert published["profiling"] is False and "DCGM_FI_PROF_DRAM_ACTIVE" not in published["counters"]
    extra = [{"field": "DCGM_FI_PROF_SM_ACTIVE", "type": "gauge", "help": "SM activity"}]
    assert dx.problems(settings(profiling=False, extra_counters=extra), CLUSTER) == [
        "dcgm_exporter_extra_counters[0].field DCGM_FI_PROF_SM_ACTIVE is a profiling field: it needs dcgm_exporter_profiling: true"]
    assert dx.problems(settings(extra_counters=extra), CLUSTER) == []


def test_host_paths_read_only_and_the_counters_file_passed_with_f():
    ds, spec, container = exporter(dx.objects(settings(), CLUSTER))
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["pod-gpu-resources"]["hostPath"] == {"path": "/var/lib/kubelet/pod-resources", "type": "Directory"}
    assert volumes["counters"] == {"name": "counters", "configMap": {"name": "nvidia-dcgm-exporter-counters"}}
    assert all(m["readOnly"] for m in container["volumeMounts"])
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/var/lib/kubelet/pod-resources", dx.COUNTERS_DIR}
    assert container["args"] == ["-f", "/etc/dcgm-exporter/gpunode/counters.csv"]
    assert [v for v in spec["volumes"] if "hostPath" in v] == [volumes["pod-gpu-resources"]]
    _unused, moved, mounted = exporter(dx.objects(settings(pod_resources_path="/var/lib/k0s/kubelet/pod-resources"), CLUSTER))
    assert moved["volumes"][0]["hostPath"]["path"] == "/var/lib/k0s/kubelet/pod-resources"
    assert mounted["volumeMounts"][0]["mountPath"] == "/var/lib/kubelet/pod-resources"  # where the exporter looks


def test_port_env_probes_and_resources():
    _unused, _unused, container = exporter(dx.objects(settings(), CLUSTER))
    assert container["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    variables = env(container)
    assert variables["DCGM_EXPORTER_LISTEN"] == ":9400"
    assert variables["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert variables["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert variables["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS" not in variables
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/health", "port": 9400, "scheme": "HTTP"}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    other = dx.objects(settings(**MATRIX["remote_hostengine"]), CLUSTER)
    _unused, _unused, moved = exporter(other)
    assert moved["ports"][0]["containerPort"] == 9500 and env(moved)["DCGM_EXPORTER_LISTEN"] == ":9500"
    assert moved["livenessProbe"]["httpGet"]["port"] == 9500
    assert moved["args"] == ["-f", dx.COUNTERS_PATH, "-r", "localhost:5555"]
    assert moved["resources"]["limits"] == {"memory": "512Mi"}
    (svc,) = by_kind(other, "Service")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9500, "targetPort": "metrics", "protocol": "TCP"}]


def test_service_selects_the_exporter_pods():
    objects = dx.objects(settings(), CLUSTER)
    ds, _unused, _unused = exporter(objects)
    (svc,) = by_kind(objects, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert not by_kind(objects, "ServiceMonitor")
    assert dx.published(settings(), CLUSTER)["service_monitor"] is False


def test_service_monitor_only_when_enabled():
    objects = dx.objects(settings(**MATRIX["service_monitor"]), CLUSTER)
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (svc,) = by_kind(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["nvidia-gpu"]}
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s", "honorLabels": True}]
    default = dict(defaults()["service_monitor"], enabled=True)
    (plain,) = by_kind(dx.objects(settings(service_monitor=default), CLUSTER), "ServiceMonitor")
    assert plain["spec"]["endpoints"][0]["interval"] == "15s" and plain["spec"]["endpoints"][0]["honorLabels"] is False
    assert dx.published(settings(**MATRIX["service_monitor"]), CLUSTER)["service_monitor"] is True


def test_pod_label_rbac_is_cluster_wide_read_only_and_only_with_pod_labels():
    plain = dx.objects(settings(), CLUSTER)
    assert not [o for o in plain if o["kind"].endswith("Role") or o["kind"].endswith("RoleBinding")]
    (account,) = by_kind(plain, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    _unused, spec, _unused = exporter(plain)
    assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == "nvidia-dcgm-exporter"

    objects = dx.objects(settings(pod_labels=True), CLUSTER)
    (role,) = by_kind(objects, "ClusterRole")
    (binding,) = by_kind(objects, "ClusterRoleBinding")
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nvidia-dcgm-exporter", "namespace": "nvidia-gpu"}]
    (account,) = by_kind(objects, "ServiceAccount")
    _unused, spec, container = exporter(objects)
    assert account["automountServiceAccountToken"] is True and spec["automountServiceAccountToken"] is True
    assert env(container)["DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS"] == "true"
    kinds = [o["kind"] for o in objects]
    assert kinds.index("ClusterRoleBinding") < kinds.index("DaemonSet")


def test_checksum_rolls_the_pods_on_a_counter_change_only():
    def annotation(**overrides):
        ds, _unused, _unused = exporter(dx.objects(settings(**overrides), CLUSTER))
        return ds["spec"]["template"]["metadata"]["annotations"][ko.CHECKSUM_ANNOTATION]

    base = annotation()
    assert annotation() == base
    assert annotation(port=9500) == base  # not a counter change
    assert annotation(pod_labels=True) == base
    assert annotation(extra_counters=MATRIX["extra_counters"]["extra_counters"]) != base
    assert annotation(profiling=False) != base
    changed = defaults()["counters"]
    changed[0] = dict(changed[0], help="SM clock")
    assert annotation(counters=changed) != base


def test_extra_counters_are_appended_in_order():
    objects = dx.objects(settings(**MATRIX["extra_counters"]), CLUSTER)
    lines = counter_lines(objects)
    assert lines[-3:] == [
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, Double-bit ECC errors since the driver loaded",
        "DCGM_FI_PROF_SM_ACTIVE, gauge, Fraction of cycles an SM had a warp resident",
        "DCGM_FI_DEV_SERIAL, label, Board serial number",
    ]
    assert dx.published(settings(**MATRIX["extra_counters"]), CLUSTER)["counters"][-1] == "DCGM_FI_DEV_SERIAL"


def test_published():
    assert dx.published(settings(), CLUSTER) == {
        "image": "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless",
        "namespace": "nvidia-gpu",
        "daemonset": "nvidia-dcgm-exporter",
        "service": "nvidia-dcgm-exporter",
        "port": 9400,
        "service_monitor": False,
        "profiling": True,
        "pod_labels": False,
        "remote_hostengine": "",
        "counters": list(UPSTREAM_DEFAULT_ON),
    }


BAD = [
    ({"image": dict(defaults()["image"], tag="latest")}, "dcgm_exporter_image.tag is latest"),
    ({"image": dict(defaults()["image"], digest="sha256:12")}, "dcgm_exporter_image.digest is 'sha256:12'"),
    ({"extra_counters": [{"field": "DCGM_FI_DEV_GPU_TEMP", "type": "gauge", "help": "again"}]},
     "dcgm_exporter_extra_counters[0].field DCGM_FI_DEV_GPU_TEMP is given twice (first in dcgm_exporter_counters[3])"),
    ({"extra_counters": [{"field": "GPU_TEMP", "type": "gauge", "help": "x"}]},
     "dcgm_exporter_extra_counters[0].field is 'GPU_TEMP': a DCGM field name such as DCGM_FI_DEV_GPU_TEMP"),
    ({"extra_counters": [{"field": "DCGM_FI_DEV_SERIAL", "type": "histogram", "help": "x"}]},
     "dcgm_exporter_extra_counters[0].type is 'histogram': one of gauge, counter, label"),
    ({"extra_counters": [{"field": "DCGM_FI_DEV_SERIAL", "type": "label", "help": "serial, of the board"}]},
     "holds a comma, double quote or line break"),
    ({"extra_counters": [{"field": "DCGM_FI_DEV_SERIAL", "type": "label"}]}, "dcgm_exporter_extra_counters[0].help is empty"),
    ({"extra_counters": [{"field": "DCGM_FI_DEV_SERIAL", "type": "label", "help": "x", "unit": "s"}]}, "has unknown keys unit"),
    ({"extra_counters": "DCGM_FI_DEV_SERIAL"}, "dcgm_exporter_extra_counters must be a list"),
    ({"port": 0}, "dcgm_exporter_port is 0: a port number from 1 to 65535"),
    ({"port": 70000}, "dcgm_exporter_port is 70000"),
    ({"port": "9400"}, "dcgm_exporter_port is '9400'"),
    ({"service_monitor": {"enabled": True, "interval": "15"}}, "dcgm_exporter_service_monitor.interval is '15': a Prometheus duration"),
    ({"service_monitor": {"enabled": True, "interval": "0s"}}, "dcgm_exporter_service_monitor.interval is '0s'"),
    ({"service_monitor": {"enabled": True, "intervall": "15s"}}, "dcgm_exporter_service_monitor has unknown keys intervall"),
    ({"service_monitor": {"enabled": True, "labels": {"bad key!": "x"}}}, "labels key 'bad key!' is not a Kubernetes label name"),
    ({"remote_hostengine": "localhost"}, "dcgm_exporter_remote_hostengine is 'localhost': HOST:PORT"),
    ({"remote_hostengine": "localhost:99999"}, "dcgm_exporter_remote_hostengine is 'localhost:99999'"),
    ({"pod_resources_path": "var/lib/kubelet/pod-resources"}, "dcgm_exporter_pod_resources_path is 'var/lib/kubelet/pod-resources'"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m for _unused, m in BAD])
def test_bad_input_is_refused_naming_the_variable(overrides, message):
    found = dx.problems(settings(**overrides), CLUSTER)
    assert len(found) == 1, found
    assert message in found[0]
    assert found[0].startswith("dcgm_exporter_")


@pytest.mark.parametrize("value", ["localhost:5555", "10.0.0.5:5555", "[::1]:5555", "tcp://dcgm.local:5555",
                                   "unix:///run/nvidia-dcgm/dcgm.sock", "vsock://3:5555"])
def test_remote_hostengine_forms_the_exporter_takes(value):
    assert dx.problems(settings(remote_hostengine=value), CLUSTER) == []


def test_filters_call_the_builder():
    names = filters.FilterModule().filters()
    assert names["dcgm_exporter_objects"](settings(), CLUSTER) == dx.objects(settings(), CLUSTER)
    assert names["dcgm_exporter_problems"](settings(port=0), CLUSTER) == dx.problems(settings(port=0), CLUSTER)
    assert names["dcgm_exporter_published"](settings(), CLUSTER) == dx.published(settings(), CLUSTER)
