# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device_plugin role's objects: NVIDIA's device plugin as a DaemonSet with named configs.

``settings`` are the role's variables without the ``device_plugin_`` prefix, every default
filled in (roles/device_plugin/defaults/main.yml), plus ``node_configs``
({Kubernetes node name: config name}, from each GPU node's ``device_plugin_node_config``).
``cluster`` is the gpu_cluster role's fact (see k8s_objects).

Facts from NVIDIA/k8s-device-plugin v0.20.0 (chart deployments/helm/nvidia-device-plugin,
api/config/v1, cmd/config-manager, cmd/mps-control-daemon):

- Each named config is a ``version: v1`` file in one ConfigMap; config-manager (init container
  and sidecar) links the one the node's ``nvidia.com/device-plugin.config`` label names (else
  DEFAULT_CONFIG) to /config/config.yaml, pointing into /available-configs, so the plugin
  container mounts both, and SIGHUPs the process whose argv[0] is exactly ``nvidia-device-plugin``.
- Environment variables override the config file, so only what is global goes in env
  (MPS_ROOT, NVIDIA_DRIVER_ROOT, PASS_DEVICE_SPECS); the per-config flags go in the files.
- SYS_ADMIN when any config's migStrategy is not none or its deviceListStrategy has
  volume-mounts (the chart's requiresCapSysAdmin), NVIDIA_MIG_MONITOR_DEVICES=all with MIG,
  privileged with compatWithCPUManager (which also sets PASS_DEVICE_SPECS).
- renameByDefault advertises ``<name>.shared``; MPS needs replicas >= 2 and full GPUs; time-slicing
  and MPS are exclusive; the MPS control daemon (same image) runs only on nodes labelled
  ``nvidia.com/mps.capable=true`` (GFD sets it for a node whose config shares with MPS).
"""

from __future__ import absolute_import, division, print_function

import json
import re

import yaml

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

COMPONENT = "nvidia-device-plugin"
NAME = "nvidia-device-plugin"
CONFIG_MAP = NAME + "-configs"
MPS_NAME = NAME + "-mps-control-daemon"
MPS_CAPABLE = "nvidia.com/mps.capable"
GPU_RESOURCE = "nvidia.com/gpu"
# argv[0] the config-manager sidecars look for (cmd/config-manager findPidToSignal).
PLUGIN_PROCESS = "nvidia-device-plugin"
MPS_PROCESS = "/usr/bin/mps-control-daemon"

MIG_STRATEGIES = ("none", "single", "mixed")
LIST_STRATEGIES = ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri")
ID_STRATEGIES = ("uuid", "index")
CONFIG_KEYS = ("mig_strategy", "fail_on_init_error", "device_list_strategy", "device_id_strategy", "time_slicing", "mps")
TIME_SLICING_KEYS = ("replicas", "rename_by_default", "fail_requests_greater_than_one")
MPS_KEYS = ("replicas", "rename_by_default")
CONFIG_DEFAULTS = {"mig_strategy": "none", "fail_on_init_error": True, "device_list_strategy": "auto",
                   "device_id_strategy": "uuid", "time_slicing": None, "mps": None}
# A ConfigMap key and a label value both (the config-manager reads the label, then the key).
CONFIG_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
PERCENT = re.compile(r"^[1-9][0-9]?%$|^100%$")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _config(options):
    found = dict(CONFIG_DEFAULTS)
    found.update(options or {})
    return found


def _list_strategy(value, cluster):
    """device_list_strategy as the list the plugin takes; auto is cdi-cri where every GPU node has CDI."""
    strategies = [value] if isinstance(value, str) else list(value or [])
    if strategies == ["auto"]:
        return ["cdi-cri"] if cluster.get("cdi_enabled") else ["envvar"]
    return strategies


def _sharing(options):
    """(kind, section) of one config: kind none|time-slicing|mps; replicas 1 shares nothing."""
    mps, slicing = options.get("mps") or {}, options.get("time_slicing") or {}
    if mps:
        return "mps", mps
    if slicing and slicing.get("replicas", 1) > 1:
        return "time-slicing", slicing
    return "none", {}


def config_text(options, cluster):
    """One named config: the plugin's ``version: v1`` file (api/config/v1)."""
    options = _config(options)
    document = {
        "version": "v1",
        "flags": {
            "migStrategy": options["mig_strategy"],
            "failOnInitError": bool(options["fail_on_init_error"]),
            "plugin": {
                "deviceListStrategy": _list_strategy(options["device_list_strategy"], cluster),
                "deviceIDStrategy": options["device_id_strategy"],
            },
        },
    }
    kind, section = _sharing(options)
    resources = [{"name": GPU_RESOURCE, "replicas": int(section.get("replicas", 1))}]
    if kind == "time-slicing":
        document["sharing"] = {"timeSlicing": {
            "renameByDefault": bool(section.get("rename_by_default")),
            "failRequestsGreaterThanOne": bool(section.get("fail_requests_greater_than_one")),
            "resources": resources}}
    elif kind == "mps":
        document["sharing"] = {"mps": {"renameByDefault": bool(section.get("rename_by_default")), "resources": resources}}
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def config_data(settings, cluster):
    return {name: config_text(options, cluster) for name, options in sorted((settings.get("configs") or {}).items())}


def _all_configs(settings):
    return [_config(options) for _unused, options in sorted((settings.get("configs") or {}).items())]


def _any_mig(settings):
    return any(c["mig_strategy"] != "none" for c in _all_configs(settings))


def _any_strategy(settings, cluster, predicate):
    return any(predicate(s) for c in _all_configs(settings) for s in _list_strategy(c["device_list_strategy"], cluster))


def _any_mps(settings):
    return any(_sharing(c)[0] == "mps" for c in _all_configs(settings))


def _max_unavailable(settings):
    value = settings.get("max_unavailable")
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _base_env(settings):
    return [
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"},
    ] + ([{"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"}] if _any_mig(settings) else [])


def _plugin_container(settings, cluster, image):
    env = [
        {"name": "CONFIG_FILE", "value": "/config/config.yaml"},
        {"name": "NVIDIA_DRIVER_ROOT", "value": settings["driver_root"]},
        {"name": "PASS_DEVICE_SPECS", "value": "true" if settings["compat_with_cpu_manager"] else "false"},
        {"name": "MPS_ROOT", "value": settings["mps_root"]},
    ] + _base_env(settings)
    needs_sys_admin = _any_mig(settings) or _any_strategy(settings, cluster, lambda s: s == "volume-mounts")
    volumes, mounts = [], []
    for volume, mount in [
        ko.host_path("device-plugins", "/var/lib/kubelet/device-plugins", read_only=False),
        ko.host_path("driver-root", settings["driver_root"], mount_path="/driver-root"),
    ]:
        volumes.append(volume)
        mounts.append(mount)
    if _any_strategy(settings, cluster, lambda s: s.startswith("cdi-")):
        volume, mount = ko.host_path("cdi-root", "/var/run/cdi", kind="DirectoryOrCreate", read_only=False)
        volumes.append(volume)
        mounts.append(mount)
    if _any_mps(settings):
        # The plugin health-checks the MPS daemon through its pipes and shm: read-write, as upstream.
        for volume, mount in _mps_volumes(settings):
            volumes.append(volume)
            mounts.append(mount)
    mounts += [{"name": "available-configs", "mountPath": "/available-configs", "readOnly": True},
               {"name": "config", "mountPath": "/config", "readOnly": True}]
    container = {
        "name": "nvidia-device-plugin",
        "image": image,
        "command": [PLUGIN_PROCESS],
        "env": env,
        "securityContext": ko.security_context(add=["SYS_ADMIN"] if needs_sys_admin else (),
                                               privileged=bool(settings["compat_with_cpu_manager"])),
        "resources": settings["resources"],
        "volumeMounts": mounts,
    }
    return container, volumes


def _mps_volumes(settings):
    """The MPS root (pipes and logs, at /mps) and its shm (at /dev/shm), shared by the daemon and the plugin."""
    root = settings["mps_root"].rstrip("/") or "/"
    root_volume, root_mount = ko.host_path("mps-root", root, kind="DirectoryOrCreate", read_only=False, mount_path="/mps")
    shm_volume, shm_mount = ko.host_path("mps-shm", root + "/shm", read_only=False, mount_path="/dev/shm")
    # No type check: the volume is set up before the init container (mount-shm) creates the directory.
    del shm_volume["hostPath"]["type"]
    return [(root_volume, root_mount), (shm_volume, shm_mount)]


def _config_managers(settings, image, process):
    init = ko.config_manager(image, CONFIG_MAP, settings["default_config"], process, oneshot=True)
    sidecar = ko.config_manager(image, CONFIG_MAP, settings["default_config"], process, oneshot=False)
    return init, sidecar


def _plugin_daemonset(settings, cluster, image, data):
    plugin, volumes = _plugin_container(settings, cluster, image)
    init, sidecar = _config_managers(settings, image, PLUGIN_PROCESS)
    spec = ko.pod_spec(cluster, NAME, [plugin, sidecar], init_containers=[init],
                       volumes=volumes + ko.config_volumes(CONFIG_MAP),
                       extra={"shareProcessNamespace": True})
    return ko.daemonset(NAME, cluster, COMPONENT, spec, checksum_of=data, max_unavailable=_max_unavailable(settings))


def _mps_daemonset(settings, cluster, image, data):
    (root_volume, root_mount), (shm_volume, shm_mount) = _mps_volumes(settings)
    mount_shm = {
        "name": "mps-mount-shm",
        "image": image,
        "command": ["mps-control-daemon", "mount-shm"],
        # It mounts a tmpfs at <mps root>/shm that must reach the host: a Bidirectional mount, privileged.
        "securityContext": ko.security_context(privileged=True),
        "resources": dict(ko.SIDECAR_RESOURCES),
        "volumeMounts": [dict(root_mount, mountPropagation="Bidirectional")],
    }
    init, sidecar = _config_managers(settings, image, MPS_PROCESS)
    daemon = {
        "name": "mps-control-daemon",
        "image": image,
        "command": [MPS_PROCESS],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "CONFIG_FILE", "value": "/config/config.yaml"}] + _base_env(settings),
        # The control daemon sets the GPUs' compute mode and runs nvidia-cuda-mps-control (the chart: privileged).
        "securityContext": ko.security_context(privileged=True),
        "resources": settings["resources"],
        "volumeMounts": [shm_mount, root_mount,
                         {"name": "available-configs", "mountPath": "/available-configs", "readOnly": True},
                         {"name": "config", "mountPath": "/config", "readOnly": True}],
    }
    # hostPID (the chart's mps.enableHostPID, default true) lets the MPS server find its own PID as the
    # driver sees it; without it the pod shares one process namespace for the sidecar's signal.
    extra = {"nodeSelector": {MPS_CAPABLE: "true"}}
    extra["hostPID" if settings["mps_host_pid"] else "shareProcessNamespace"] = True
    spec = ko.pod_spec(cluster, NAME, [daemon, sidecar], init_containers=[mount_shm, init],
                       volumes=[root_volume, shm_volume] + ko.config_volumes(CONFIG_MAP), extra=extra)
    return ko.daemonset(MPS_NAME, cluster, MPS_NAME, spec, checksum_of=data, max_unavailable=_max_unavailable(settings))


def objects(settings, cluster):
    """ServiceAccount, ClusterRole(+binding), ConfigMap, the plugin DaemonSet, the MPS daemon's when MPS is used."""
    image = ko.image_ref(cluster, settings["image"])
    data = config_data(settings, cluster)
    found = [ko.service_account(NAME, cluster, COMPONENT)]
    # config-manager watches its own Node's label: nodes get/list/watch, nothing else.
    found += ko.cluster_role(NAME, cluster, COMPONENT, [ko.rule([""], ["nodes"], ["get", "list", "watch"])])
    found.append(ko.config_map(CONFIG_MAP, cluster, COMPONENT, data))
    found.append(_plugin_daemonset(settings, cluster, image, data))
    if _any_mps(settings):
        found.append(_mps_daemonset(settings, cluster, image, data))
    # Plain data, no shared references (a YAML dump of the rendered objects gets no anchors).
    return json.loads(json.dumps(found))


def _config_problems(name, options, cluster):
    where = "device_plugin_configs.%s" % name
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return ["%s must be a dict of options (%s)" % (where, ", ".join(CONFIG_KEYS))]
    found = ["%s.%s is not an option: use %s" % (where, key, ", ".join(CONFIG_KEYS)) for key in sorted(options) if key not in CONFIG_KEYS]
    options = _config(options)
    mig = options["mig_strategy"]
    if mig not in MIG_STRATEGIES:
        found.append("%s.mig_strategy is %r: choose one of %s" % (where, mig, ", ".join(MIG_STRATEGIES)))
    if not isinstance(options["fail_on_init_error"], bool):
        found.append("%s.fail_on_init_error is %r: true or false" % (where, options["fail_on_init_error"]))
    strategies = options["device_list_strategy"]
    strategies = [strategies] if isinstance(strategies, str) else strategies
    if not isinstance(strategies, list) or not strategies or not all(isinstance(s, str) for s in strategies):
        found.append("%s.device_list_strategy is %r: auto, one of %s, or a list of them" % (where, options["device_list_strategy"], ", ".join(LIST_STRATEGIES)))
    elif strategies != ["auto"]:
        wrong = [s for s in strategies if s not in LIST_STRATEGIES]
        if wrong:
            found.append("%s.device_list_strategy has %s: choose auto (alone) or among %s" % (where, ", ".join(wrong), ", ".join(LIST_STRATEGIES)))
        cdi = [s for s in strategies if s.startswith("cdi-") and s in LIST_STRATEGIES]
        if cdi and not cluster.get("cdi_enabled"):
            found.append("%s.device_list_strategy is %s but CDI is not enabled on every GPU node: enable the container_toolkit role's CDI"
                         " (container_toolkit_cdi_enabled) on every GPU node, or use envvar (auto)" % (where, ", ".join(cdi)))
    if options["device_id_strategy"] not in ID_STRATEGIES:
        found.append("%s.device_id_strategy is %r: choose one of %s" % (where, options["device_id_strategy"], ", ".join(ID_STRATEGIES)))
    found += _sharing_problems(where, options)
    return found


def _section_problems(where, section, keys, minimum, why):
    if not isinstance(section, dict):
        return ["%s must be a dict (%s)" % (where, ", ".join(keys))]
    found = ["%s.%s is not an option: use %s" % (where, key, ", ".join(keys)) for key in sorted(section) if key not in keys]
    replicas = section.get("replicas")
    if not _is_int(replicas):
        found.append("%s.replicas is %r: give a whole number of at least %d" % (where, replicas, minimum))
    elif replicas < minimum:
        found.append("%s.replicas is %d: %s" % (where, replicas, why))
    for key in keys[1:]:
        if key in section and not isinstance(section[key], bool):
            found.append("%s.%s is %r: true or false" % (where, key, section[key]))
    return found


def _sharing_problems(where, options):
    slicing, mps = options.get("time_slicing"), options.get("mps")
    found = []
    if slicing not in (None, {}):
        found += _section_problems(where + ".time_slicing", slicing, TIME_SLICING_KEYS, 1,
                                   "time-slicing needs at least 1 (1 shares nothing)")
    if mps not in (None, {}):
        found += _section_problems(where + ".mps", mps, MPS_KEYS, 2, "MPS needs at least 2")
        if slicing not in (None, {}):
            found.append("%s has both time_slicing and mps: the device plugin shares a GPU one way, give one of them" % where)
        if options.get("mig_strategy") not in ("none", None):
            found.append("%s.mps with mig_strategy %s: MPS shares full GPUs only, not MIG devices; use mig_strategy none"
                         " or time_slicing" % (where, options.get("mig_strategy")))
    return found


def problems(settings, cluster):
    """Every reason the role cannot build its objects, one line each, naming the variable."""
    found = ko.image_problems("device_plugin_image", settings.get("image"))
    configs = settings.get("configs")
    if not isinstance(configs, dict) or not configs:
        return found + ["device_plugin_configs must name at least one config ({name: options})"]
    for name in sorted(configs, key=str):
        if not isinstance(name, str) or len(name) > 63 or not CONFIG_NAME.match(name):
            found.append("device_plugin_configs has %r: a config name is a node label value and a ConfigMap key -"
                         " lower-case letters, digits, '-' and '.', starting and ending alphanumeric, at most 63 characters" % (name,))
            continue
        found += _config_problems(name, configs[name], cluster)
    default = settings.get("default_config")
    if default not in configs:
        found.append("device_plugin_default_config is %r, not one of device_plugin_configs (%s)" % (default, ", ".join(sorted(map(str, configs)))))
    for node, name in sorted((settings.get("node_configs") or {}).items()):
        if name not in configs:
            found.append("device_plugin_node_config of %s is %r, not one of device_plugin_configs (%s)"
                         % (node, name, ", ".join(sorted(map(str, configs)))))
    unavailable = settings.get("max_unavailable")
    if unavailable not in (None, ""):
        value = _max_unavailable(settings)
        if not ((_is_int(value) and value >= 1) or (isinstance(value, str) and PERCENT.match(value))):
            found.append("device_plugin_max_unavailable is %r: a whole number of at least 1, a percentage such as 25%%,"
                         " or empty for the cluster's" % (unavailable,))
    for key in ("driver_root", "mps_root"):
        if not str(settings.get(key) or "").startswith("/"):
            found.append("device_plugin_%s is %r: an absolute path on the node" % (key, settings.get(key)))
    for key in ("compat_with_cpu_manager", "mps_host_pid"):
        if not isinstance(settings.get(key), bool):
            found.append("device_plugin_%s is %r: true or false" % (key, settings.get(key)))
    if not isinstance(settings.get("resources"), dict):
        found.append("device_plugin_resources must be a dict (requests, limits)")
    return found


def _published_config(options, cluster):
    options = _config(options)
    kind, section = _sharing(options)
    mig = options["mig_strategy"]
    resource = GPU_RESOURCE + (".shared" if kind != "none" and section.get("rename_by_default") else "")
    return {
        "mig_strategy": mig,
        "sharing": kind,
        "replicas": int(section.get("replicas", 1)) if kind != "none" else 1,
        # single: every GPU's MIG devices are advertised as nvidia.com/gpu; mixed: full GPUs as
        # nvidia.com/gpu (shared when configured) and each MIG device as nvidia.com/mig-<profile> (never shared).
        "resource": resource,
        "mig_resource_prefix": "nvidia.com/mig-" if mig == "mixed" else "",
        "device_list_strategy": _list_strategy(options["device_list_strategy"], cluster),
        "device_id_strategy": options["device_id_strategy"],
    }


def published(settings, cluster):
    """gpunode_device_plugin: what was resolved, for the report and validate's plugin stage."""
    mps = _any_mps(settings)
    return {
        "image": ko.image_ref(cluster, settings["image"]),
        "namespace": cluster["namespace"],
        "daemonset": NAME,
        "mps_daemonset": MPS_NAME if mps else "",
        "daemonsets": [NAME, MPS_NAME] if mps else [NAME],
        "config_map": CONFIG_MAP,
        "default_config": settings["default_config"],
        # GFD mounts the same ConfigMap: the checksum rolls its pods too when a config changes.
        "config_checksum": ko.checksum(config_data(settings, cluster)),
        "mig_strategy": _config(settings["configs"].get(settings["default_config"]) or {}).get("mig_strategy", "none"),
        "mig_strategies": sorted(set(c.get("mig_strategy", "none") for c in _all_configs(settings))),
        "configs": {name: _published_config(options, cluster) for name, options in sorted(settings["configs"].items())},
        "node_configs": dict(sorted((settings.get("node_configs") or {}).items())),
        "node_label": ko.CONFIG_LABEL,
    }
