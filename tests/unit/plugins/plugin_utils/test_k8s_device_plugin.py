"""The device plugin's objects, refusals and published fact."""

import os

import pytest
import yaml

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_device_plugin as dp
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

from ...conftest import ROOT
from .k8s_cluster import CLUSTER

DIGEST = "sha256:" + "0f" * 32

with open(os.path.join(ROOT, "roles", "device_plugin", "defaults", "main.yml")) as _handle:
    DEFAULTS = {k[len("device_plugin_"):]: v for k, v in yaml.safe_load(_handle).items()}

# Settings overrides per case (the lead's matrix test validates every object of every case).
# "cluster" in a case is merged into the cluster fact instead.
MATRIX = {
    "defaults": {},
    "airgapped": {"image": {"registry": "nvcr.io/nvidia", "repository": "k8s-device-plugin", "tag": "v0.20.0", "digest": DIGEST},
                  "cluster": {"registry": "registry.local:5000/nvidia", "image_pull_secrets": ["mirror-pull"]}},
    "mig_mixed": {"configs": {"default": {"mig_strategy": "mixed"}}},
    "mig_single": {"configs": {"default": {"mig_strategy": "single"}}},
    "time_slicing_4": {"configs": {"default": {"time_slicing": {"replicas": 4, "rename_by_default": True,
                                                                "fail_requests_greater_than_one": True}}}},
    "mps_2": {"configs": {"default": {"mps": {"replicas": 2}}}},
    "mps_no_host_pid": {"configs": {"default": {"mps": {"replicas": 4, "rename_by_default": True}}}, "mps_host_pid": False},
    "cdi": {"cluster": {"cdi_enabled": True}},
    "volume_mounts": {"configs": {"default": {"device_list_strategy": ["volume-mounts", "envvar"], "device_id_strategy": "index"}}},
    "cpu_manager": {"compat_with_cpu_manager": True, "max_unavailable": "25%"},
    "named_configs": {
        "configs": {"default": {}, "ts-8": {"time_slicing": {"replicas": 8}}, "mig-mixed": {"mig_strategy": "mixed"},
                    "mps-4": {"mps": {"replicas": 4}}},
        "default_config": "default",
        "node_configs": {"gpu-a": "ts-8", "gpu-b": "mig-mixed", "gpu-c": "mps-4"},
        "driver_root": "/run/nvidia/driver", "max_unavailable": 2,
    },
}


def case(name):
    overrides = dict(MATRIX[name])
    cluster = dict(CLUSTER, **overrides.pop("cluster", {}))
    settings = dict(DEFAULTS, node_configs={})
    settings.update(overrides)
    return settings, cluster


def build(name):
    settings, cluster = case(name)
    return dp.objects(settings, cluster)


def kinds(objects):
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def plugin_ds(objects):
    return next(o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == dp.NAME)


def container(ds, name):
    spec = ds["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def env(c):
    return {e["name"]: e.get("value") for e in c["env"]}


def mounts(c):
    return {m["name"]: m for m in c["volumeMounts"]}


def volumes(ds):
    return {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_every_case_is_accepted_and_deterministic(name):
    settings, cluster = case(name)
    assert dp.problems(settings, cluster) == []
    assert dp.objects(settings, cluster) == dp.objects(settings, cluster)
    assert dp.published(settings, cluster)["configs"]


def test_defaults_give_rbac_and_config_before_one_daemonset():
    objects = build("defaults")
    assert kinds(objects) == [("ServiceAccount", dp.NAME), ("ClusterRole", dp.NAME), ("ClusterRoleBinding", dp.NAME),
                              ("ConfigMap", dp.CONFIG_MAP), ("DaemonSet", dp.NAME)]
    role = objects[1]
    assert "namespace" not in role["metadata"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    assert objects[2]["subjects"] == [{"kind": "ServiceAccount", "name": dp.NAME, "namespace": "nvidia-gpu"}]


def test_the_config_is_upstreams_v1_file():
    text = build("time_slicing_4")[3]["data"]["default"]
    assert yaml.safe_load(text) == {
        "version": "v1",
        "flags": {"migStrategy": "none", "failOnInitError": True,
                  "plugin": {"deviceListStrategy": ["envvar"], "deviceIDStrategy": "uuid"}},
        "sharing": {"timeSlicing": {"renameByDefault": True, "failRequestsGreaterThanOne": True,
                                    "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}},
    }
    mps = yaml.safe_load(build("mps_2")[3]["data"]["default"])
    assert mps["sharing"] == {"mps": {"renameByDefault": False, "resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}
    assert "sharing" not in yaml.safe_load(build("defaults")[3]["data"]["default"])
    one = dict(DEFAULTS, node_configs={}, configs={"default": {"time_slicing": {"replicas": 1}}})
    assert "sharing" not in yaml.safe_load(dp.objects(one, CLUSTER)[3]["data"]["default"])


def test_image_is_pinned_and_the_mirror_applied_to_every_container():
    objects = build("airgapped")
    ref = "registry.local:5000/nvidia/k8s-device-plugin:v0.20.0@" + DIGEST
    spec = plugin_ds(objects)["spec"]["template"]["spec"]
    assert {c["image"] for c in spec["containers"] + spec["initContainers"]} == {ref}
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}]
    assert dp.published(*case("airgapped"))["image"] == ref
    assert plugin_ds(build("defaults"))["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"


def test_pod_schedules_on_gpu_nodes_with_the_clusters_tolerations_and_runtime_class():
    spec = plugin_ds(build("defaults"))["spec"]["template"]["spec"]
    assert spec["tolerations"] == CLUSTER["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["priorityClassName"] == "system-node-critical"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [t["matchExpressions"][0]["key"] for t in terms] == [ko.NFD_PCI_NVIDIA, ko.GPU_PRESENT]
    assert spec["serviceAccountName"] == dp.NAME
    assert spec["shareProcessNamespace"] is True
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_plugin_container_env_and_config_manager():
    ds = plugin_ds(build("defaults"))
    plugin = container(ds, "nvidia-device-plugin")
    assert plugin["command"] == ["nvidia-device-plugin"]
    assert env(plugin) == {"CONFIG_FILE": "/config/config.yaml", "NVIDIA_DRIVER_ROOT": "/", "PASS_DEVICE_SPECS": "false",
                           "MPS_ROOT": "/run/nvidia/mps", "NVIDIA_VISIBLE_DEVICES": "all",
                           "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
    # No per-config flag in env: env overrides the config file, so it would override every node's config.
    assert not {"MIG_STRATEGY", "DEVICE_LIST_STRATEGY", "DEVICE_ID_STRATEGY", "FAIL_ON_INIT_ERROR"} & set(env(plugin))
    init, sidecar = container(ds, "config-manager-init"), container(ds, "config-manager")
    assert [c["name"] for c in ds["spec"]["template"]["spec"]["initContainers"]] == ["config-manager-init"]
    assert env(init)["ONESHOT"] == "true" and env(init)["SEND_SIGNAL"] == "false"
    assert env(sidecar)["ONESHOT"] == "false" and env(sidecar)["SEND_SIGNAL"] == "true"
    assert env(sidecar)["PROCESS_TO_SIGNAL"] == plugin["command"][0]
    assert env(sidecar)["DEFAULT_CONFIG"] == "default" and env(sidecar)["NODE_LABEL"] == ko.CONFIG_LABEL
    # The chosen config is a link into /available-configs: the plugin mounts both.
    assert mounts(plugin)["available-configs"]["mountPath"] == "/available-configs"
    assert mounts(plugin)["config"]["mountPath"] == "/config"
    assert volumes(ds)["available-configs"]["configMap"]["name"] == dp.CONFIG_MAP
    for c in (plugin, init, sidecar):
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_host_paths_are_read_only_unless_written():
    ds = plugin_ds(build("defaults"))
    plugin = container(ds, "nvidia-device-plugin")
    assert volumes(ds)["device-plugins"]["hostPath"] == {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}
    assert "readOnly" not in mounts(plugin)["device-plugins"]  # the plugin writes its socket there
    assert volumes(ds)["driver-root"]["hostPath"]["path"] == "/"
    assert mounts(plugin)["driver-root"] == {"name": "driver-root", "mountPath": "/driver-root", "readOnly": True}
    assert "cdi-root" not in volumes(ds) and "mps-root" not in volumes(ds)
    cdi = plugin_ds(build("cdi"))
    assert volumes(cdi)["cdi-root"]["hostPath"] == {"path": "/var/run/cdi", "type": "DirectoryOrCreate"}
    other = plugin_ds(build("named_configs"))
    assert volumes(other)["driver-root"]["hostPath"]["path"] == "/run/nvidia/driver"
    assert env(container(other, "nvidia-device-plugin"))["NVIDIA_DRIVER_ROOT"] == "/run/nvidia/driver"


def test_capabilities_only_when_needed():
    def context(name):
        return container(plugin_ds(build(name)), "nvidia-device-plugin")["securityContext"]
    assert context("defaults") == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert context("time_slicing_4") == context("defaults")
    assert context("cdi") == context("defaults")
    for name in ("mig_mixed", "mig_single", "volume_mounts", "named_configs"):
        assert context(name) == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}, name
    assert context("cpu_manager") == {"privileged": True}
    assert env(container(plugin_ds(build("cpu_manager")), "nvidia-device-plugin"))["PASS_DEVICE_SPECS"] == "true"
    assert env(container(plugin_ds(build("mig_mixed")), "nvidia-device-plugin"))["NVIDIA_MIG_MONITOR_DEVICES"] == "all"
    assert "NVIDIA_MIG_MONITOR_DEVICES" not in env(container(plugin_ds(build("defaults")), "nvidia-device-plugin"))
    sidecar = container(plugin_ds(build("mig_mixed")), "config-manager")["securityContext"]
    assert sidecar == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}


def test_checksum_rolls_the_pods_on_a_config_change_only():
    def checksum(settings, cluster=None):
        return plugin_ds(dp.objects(settings, cluster or CLUSTER))["spec"]["template"]["metadata"]["annotations"][ko.CHECKSUM_ANNOTATION]
    base = dict(DEFAULTS, node_configs={})
    assert checksum(base) == checksum(dict(base))
    assert checksum(base) != checksum(dict(base, configs={"default": {"device_id_strategy": "index"}}))
    assert checksum(base) == checksum(dict(base, node_configs={"gpu-a": "default"}))
    assert checksum(base) != checksum(base, dict(CLUSTER, cdi_enabled=True))  # auto resolves to cdi-cri


def test_max_unavailable_from_the_role_or_the_cluster():
    def unavailable(name):
        return plugin_ds(build(name))["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"]
    assert unavailable("defaults") == 1
    assert unavailable("cpu_manager") == "25%"
    assert unavailable("named_configs") == 2
    settings = dict(DEFAULTS, node_configs={}, max_unavailable="3")
    assert plugin_ds(dp.objects(settings, CLUSTER))["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 3


def test_mps_adds_the_control_daemon_on_mps_capable_nodes():
    objects = build("mps_2")
    assert kinds(objects)[-2:] == [("DaemonSet", dp.NAME), ("DaemonSet", dp.MPS_NAME)]
    assert dp.MPS_NAME not in [n for _unused, n in kinds(build("time_slicing_4"))]
    mps = objects[-1]
    spec = mps["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/mps.capable": "true"}
    assert spec["affinity"] == ko.node_affinity(CLUSTER)
    assert spec["hostPID"] is True and "shareProcessNamespace" not in spec
    assert mps["spec"]["selector"] != plugin_ds(objects)["spec"]["selector"]
    daemon = container(mps, "mps-control-daemon")
    sidecar = container(mps, "config-manager")
    assert env(sidecar)["PROCESS_TO_SIGNAL"] == daemon["command"][0] == "/usr/bin/mps-control-daemon"
    assert env(daemon)["CONFIG_FILE"] == "/config/config.yaml"
    assert [c["name"] for c in spec["initContainers"]] == ["mps-mount-shm", "config-manager-init"]
    shm = container(mps, "mps-mount-shm")
    assert shm["command"] == ["mps-control-daemon", "mount-shm"]
    assert shm["volumeMounts"] == [{"name": "mps-root", "mountPath": "/mps", "mountPropagation": "Bidirectional"}]
    assert volumes(mps)["mps-root"]["hostPath"] == {"path": "/run/nvidia/mps", "type": "DirectoryOrCreate"}
    assert volumes(mps)["mps-shm"]["hostPath"] == {"path": "/run/nvidia/mps/shm"}
    assert mounts(daemon)["mps-shm"]["mountPath"] == "/dev/shm"
    plugin = container(plugin_ds(objects), "nvidia-device-plugin")
    assert mounts(plugin)["mps-root"]["mountPath"] == "/mps" and mounts(plugin)["mps-shm"]["mountPath"] == "/dev/shm"
    assert "hostPID" not in plugin_ds(objects)["spec"]["template"]["spec"]
    no_host_pid = build("mps_no_host_pid")[-1]["spec"]["template"]["spec"]
    assert no_host_pid["shareProcessNamespace"] is True and "hostPID" not in no_host_pid


def test_cdi_auto_resolves_from_the_cluster():
    assert yaml.safe_load(build("cdi")[3]["data"]["default"])["flags"]["plugin"]["deviceListStrategy"] == ["cdi-cri"]
    assert dp.published(*case("cdi"))["configs"]["default"]["device_list_strategy"] == ["cdi-cri"]
    assert dp.published(*case("defaults"))["configs"]["default"]["device_list_strategy"] == ["envvar"]


def test_published_says_what_each_node_advertises():
    settings, cluster = case("named_configs")
    found = dp.published(settings, cluster)
    assert found["daemonsets"] == [dp.NAME, dp.MPS_NAME] and found["config_map"] == dp.CONFIG_MAP
    assert found["default_config"] == "default" and found["namespace"] == "nvidia-gpu"
    assert found["node_configs"] == {"gpu-a": "ts-8", "gpu-b": "mig-mixed", "gpu-c": "mps-4"}
    configs = found["configs"]
    assert configs["default"] == {"mig_strategy": "none", "sharing": "none", "replicas": 1, "resource": "nvidia.com/gpu",
                                  "mig_resource_prefix": "", "device_list_strategy": ["envvar"], "device_id_strategy": "uuid"}
    assert (configs["ts-8"]["sharing"], configs["ts-8"]["replicas"], configs["ts-8"]["resource"]) == ("time-slicing", 8, "nvidia.com/gpu")
    assert configs["mig-mixed"]["mig_resource_prefix"] == "nvidia.com/mig-"
    assert (configs["mps-4"]["sharing"], configs["mps-4"]["replicas"]) == ("mps", 4)
    shared = dp.published(*case("time_slicing_4"))["configs"]["default"]
    assert (shared["resource"], shared["replicas"]) == ("nvidia.com/gpu.shared", 4)
    assert dp.published(*case("defaults"))["daemonsets"] == [dp.NAME]
    assert dp.published(*case("defaults"))["mps_daemonset"] == ""


def refused(**overrides):
    settings = dict(DEFAULTS, node_configs={})
    cluster = dict(CLUSTER, **overrides.pop("cluster", {}))
    settings.update(overrides)
    return dp.problems(settings, cluster)


def one_config(options, **overrides):
    return refused(configs={"default": options}, **overrides)


@pytest.mark.parametrize("options, expected", [
    ({"mps": {"replicas": 1}}, "device_plugin_configs.default.mps.replicas is 1: MPS needs at least 2"),
    ({"mps": {"replicas": 2}, "mig_strategy": "single"}, "device_plugin_configs.default.mps with mig_strategy single"),
    ({"mps": {"replicas": 2}, "time_slicing": {"replicas": 2}}, "has both time_slicing and mps"),
    ({"mig_strategy": "all"}, "device_plugin_configs.default.mig_strategy is 'all': choose one of none, single, mixed"),
    ({"time_slicing": {"replicas": 0}}, "device_plugin_configs.default.time_slicing.replicas is 0"),
    ({"time_slicing": {"replicas": "4"}}, "device_plugin_configs.default.time_slicing.replicas is '4': give a whole number"),
    ({"time_slicing": {"replicas": True}}, "time_slicing.replicas is True"),
    ({"time_slicing": {"replicas": 2, "rename": True}}, "time_slicing.rename is not an option"),
    ({"time_slicing": {"replicas": 2, "rename_by_default": "yes"}}, "time_slicing.rename_by_default is 'yes': true or false"),
    ({"mps": {"replicas": 2, "fail_requests_greater_than_one": True}}, "mps.fail_requests_greater_than_one is not an option"),
    ({"migstrategy": "none"}, "device_plugin_configs.default.migstrategy is not an option"),
    ({"device_list_strategy": "cdi"}, "device_list_strategy has cdi: choose auto (alone)"),
    ({"device_list_strategy": ["auto", "envvar"]}, "device_list_strategy has auto"),
    ({"device_list_strategy": "cdi-cri"}, "CDI is not enabled on every GPU node: enable the container_toolkit role's CDI"),
    ({"device_list_strategy": ["envvar", "cdi-annotations"]}, "is cdi-annotations but CDI is not enabled"),
    ({"device_id_strategy": "serial"}, "device_id_strategy is 'serial': choose one of uuid, index"),
    ({"fail_on_init_error": "no"}, "fail_on_init_error is 'no': true or false"),
    ("mixed", "device_plugin_configs.default must be a dict"),
])
def test_bad_configs_are_refused(options, expected):
    found = one_config(options)
    assert any(expected in line for line in found), found


def test_cdi_strategies_are_fine_where_cdi_is_enabled():
    assert one_config({"device_list_strategy": "cdi-cri"}, cluster={"cdi_enabled": True}) == []
    assert one_config({"device_list_strategy": "envvar"}) == []


@pytest.mark.parametrize("overrides, expected", [
    ({"configs": {}}, "device_plugin_configs must name at least one config"),
    ({"configs": {"default": {}, "Time_Slicing": {}}}, "device_plugin_configs has 'Time_Slicing': a config name is a node label value"),
    ({"configs": {"default": {}, "x" * 64: {}}}, "at most 63 characters"),
    ({"default_config": "ts4"}, "device_plugin_default_config is 'ts4', not one of device_plugin_configs (default)"),
    ({"node_configs": {"gpu-a": "ts4"}}, "device_plugin_node_config of gpu-a is 'ts4', not one of device_plugin_configs (default)"),
    ({"max_unavailable": 0}, "device_plugin_max_unavailable is 0"),
    ({"max_unavailable": "half"}, "device_plugin_max_unavailable is 'half'"),
    ({"driver_root": "run/nvidia/driver"}, "device_plugin_driver_root is 'run/nvidia/driver': an absolute path"),
    ({"compat_with_cpu_manager": "yes"}, "device_plugin_compat_with_cpu_manager is 'yes'"),
    ({"image": dict(DEFAULTS["image"], tag="latest")}, "device_plugin_image.tag is latest"),
    ({"image": dict(DEFAULTS["image"], digest="sha256:abc")}, "device_plugin_image.digest"),
])
def test_bad_settings_are_refused(overrides, expected):
    found = refused(**overrides)
    assert any(expected in line for line in found), found


def test_every_problem_names_its_variable():
    found = refused(configs={"a": {"mig_strategy": "all", "mps": {"replicas": 1}}, "B": {}}, default_config="c",
                    node_configs={"n": "d"}, max_unavailable=-1)
    assert len(found) >= 5
    assert all(line.startswith("device_plugin_") for line in found), found
