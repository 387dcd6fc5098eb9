# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu_feature_discovery role's objects: GFD's DaemonSet, its RBAC and (optionally) NFD.

``settings``: the role's variables without the ``gpu_feature_discovery_`` prefix::

    image {registry, repository, tag, digest}, sleep_interval ("60s"), mig_strategy
    (none|single|mixed|auto), use_node_feature_api (bool), features_dir (host path),
    driver_root ("" = not mounted), resources {requests, limits},
    nfd (deploy|existing), nfd_image {..},
    device_plugin: the device_plugin role's published fact ({} when it did not run); read:
      config_map (name or ""), default_config, config_checksum (of the ConfigMap's data),
      mig_strategy (its default configuration's), mig_strategies (every configuration's)

GFD is the device plugin's image, command ``gpu-feature-discovery``. NVML reaches it through
the NVIDIA runtime (the image sets NVIDIA_VISIBLE_DEVICES=all; the pod gets the cluster's
runtimeClassName), so it is not privileged: upstream's chart drops every capability and adds
SYS_ADMIN only where a MIG strategy other than none may be in use (the toolkit hands the MIG
monitor capability, NVIDIA_MIG_MONITOR_DEVICES=all, only to a container with SYS_ADMIN).
Its root filesystem is read-only: it writes only its label file, in the features.d mount.
"""

from __future__ import absolute_import, division, print_function

import posixpath
import re

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_nfd
from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

PREFIX = "gpu_feature_discovery_"
NAME = "gpu-feature-discovery"
PROCESS = "gpu-feature-discovery"
MIG_STRATEGIES = ("none", "single", "mixed")
# auto: the role looks for NFD's NodeFeature CRD in the cluster (apply mode) and resolves to
# existing where one not of ours is there, else deploy; the builder sees auto only in render mode.
NFD_CHOICES = ("auto", "deploy", "existing")
CONFIG_FILE = "/config/config.yaml"
OUTPUT_FILE = k8s_nfd.FEATURES_DIR + "/gfd"
DRIVER_ROOT_CTR = "/driver-root"
# A Go time.Duration as GFD's --sleep-interval parses it (one or more number+unit pairs).
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|\u00b5s|ms|s|m|h))+$")
# Labels GFD writes on every GPU node, whatever the GPU and sharing (internal/lm in
# NVIDIA/k8s-device-plugin): what validate's plugin stage looks for.
LABELS = ["nvidia.com/cuda.driver-version.full", "nvidia.com/gpu.count", "nvidia.com/gpu.memory",
          "nvidia.com/gpu.product"]
SHARING_LABELS = ["nvidia.com/gpu.replicas", "nvidia.com/gpu.sharing-strategy"]
CONFIG_MANAGER_RESOURCES = {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}


def _device_plugin(settings):
    found = settings.get("device_plugin")
    return found if isinstance(found, dict) else {}


def _config_map(settings):
    return _device_plugin(settings).get("config_map") or ""


def mig_strategy(settings):
    """(strategy the labels follow, whether GFD is told it by env, whether any node may use MIG).

    ``auto`` follows the device plugin: its default configuration's strategy (none when the
    device_plugin role did not run). With the device plugin's ConfigMap the strategy is each
    node's chosen configuration's, read from the file, so no environment variable overrides it.
    """
    wanted = settings.get("mig_strategy") or "auto"
    plugin = _device_plugin(settings)
    if wanted != "auto":
        return wanted, True, wanted != "none"
    strategy = plugin.get("mig_strategy") or "none"
    possible = set([strategy]) | set(plugin.get("mig_strategies") or [])
    return strategy, not _config_map(settings), bool(possible - {"none"})


def _env(settings):
    strategy, by_env, mig = mig_strategy(settings)
    env = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    if settings["use_node_feature_api"]:
        # The NodeFeature object goes to the pod's namespace, owned by the DaemonSet and the pod.
        env += [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    env += [{"name": "GFD_SLEEP_INTERVAL", "value": str(settings["sleep_interval"])},
            {"name": "GFD_USE_NODE_FEATURE_API", "value": "true" if settings["use_node_feature_api"] else "false"}]
    if not settings["use_node_feature_api"]:
        env.append({"name": "GFD_OUTPUT_FILE", "value": OUTPUT_FILE})
    if by_env:
        env.append({"name": "GFD_MIG_STRATEGY", "value": strategy})
    if mig:
        env.append({"name": "NVIDIA_MIG_MONITOR_DEVICES", "value": "all"})
    if _config_map(settings):
        env.append({"name": "CONFIG_FILE", "value": CONFIG_FILE})
    if settings.get("driver_root"):
        env.append({"name": "DRIVER_ROOT_CTR_PATH", "value": DRIVER_ROOT_CTR})
    return env


def _volumes(settings):
    pairs = [ko.host_path("host-sys", "/sys")]
    if not settings["use_node_feature_api"]:
        # GFD writes its label file (through a gfd-tmp directory beside it) for nfd-worker to read.
        pairs.append(ko.host_path("output-dir", settings["features_dir"], kind="DirectoryOrCreate",
                                  read_only=False, mount_path=k8s_nfd.FEATURES_DIR))
    if settings.get("driver_root"):
        pairs.append(ko.host_path("driver-root", settings["driver_root"], mount_path=DRIVER_ROOT_CTR))
    volumes, mounts = [v for v, _unused in pairs], [m for _unused, m in pairs]
    if _config_map(settings):
        volumes += ko.config_volumes(_config_map(settings))
        mounts.append({"name": "config", "mountPath": "/config", "readOnly": True})
    return volumes, mounts


def daemonset(settings, cluster):
    _unused, _unused, mig = mig_strategy(settings)
    image = ko.image_ref(cluster, settings["image"])
    volumes, mounts = _volumes(settings)
    container = {
        "name": NAME, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": [PROCESS], "env": _env(settings), "resources": settings["resources"],
        "securityContext": ko.security_context(add=["SYS_ADMIN"] if mig else (), read_only_root=True),
        "volumeMounts": mounts,
    }
    containers, init, extra, checksum_of = [container], [], {}, None
    config_map = _config_map(settings)
    if config_map:
        plugin = _device_plugin(settings)
        default = plugin.get("default_config") or ""
        init = [dict(ko.config_manager(image, config_map, default, "", True), resources=CONFIG_MANAGER_RESOURCES)]
        containers.append(dict(ko.config_manager(image, config_map, default, PROCESS, False),
                               resources=CONFIG_MANAGER_RESOURCES))
        # The sidecar signals GFD (SIGHUP) when the node's chosen configuration changes.
        extra["shareProcessNamespace"] = True
        # A changed ConfigMap reaches the pods only by a roll: the device plugin's checksum of it.
        checksum_of = {"device_plugin_config": plugin.get("config_checksum") or ""}
    service_account = NAME if _rules(settings) != ([], []) else None
    spec = ko.pod_spec(cluster, service_account, containers, volumes=volumes, init_containers=init, extra=extra)
    return ko.daemonset(NAME, cluster, NAME, spec, checksum_of=checksum_of)


def _rules(settings):
    """(cluster-wide, namespaced) rules GFD's pods need; none when they use no API at all."""
    cluster_wide, namespaced = [], []
    if _config_map(settings):
        # config-manager watches its node's nvidia.com/device-plugin.config label.
        cluster_wide.append(ko.rule([""], ["nodes"], ["get", "list", "watch"]))
    if settings["use_node_feature_api"]:
        # Its own NodeFeature in its own namespace, and its own pod (the owner reference).
        namespaced += [ko.rule([k8s_nfd.GROUP], ["nodefeatures"], ["get", "list", "watch", "create", "update"]),
                       ko.rule([""], ["pods"], ["get"])]
    return cluster_wide, namespaced


def objects(settings, cluster):
    """Every object in apply order: NFD's CRDs, accounts, RBAC and configuration (when deployed),
    GFD's account and RBAC, then the workloads (nfd-master, nfd-worker, GFD)."""
    deploy = settings["nfd"] in ("deploy", "auto")
    found = k8s_nfd.setup_objects(cluster, settings["nfd_image"]) if deploy else []
    cluster_wide, namespaced = _rules(settings)
    if cluster_wide or namespaced:
        found.append(ko.service_account(NAME, cluster, NAME))
    if cluster_wide:
        found += ko.cluster_role(NAME, cluster, NAME, cluster_wide)
    if namespaced:
        found += ko.namespaced_role(NAME, cluster, NAME, namespaced)
    if deploy:
        found += k8s_nfd.workload_objects(cluster, settings["nfd_image"])
    found.append(daemonset(settings, cluster))
    return found


def problems(settings, cluster):
    found = ko.image_problems(PREFIX + "image", settings.get("image"))
    nfd = settings.get("nfd")
    if nfd not in NFD_CHOICES:
        found.append("%snfd is %r: auto, deploy (a pinned NFD from this role) or existing (the cluster's own)" % (PREFIX, nfd))
    elif nfd in ("deploy", "auto"):
        found += ko.image_problems(PREFIX + "nfd_image", settings.get("nfd_image"))
    interval = str(settings.get("sleep_interval") or "")
    if not DURATION.match(interval) or not re.search(r"[1-9]", interval):
        found.append("%ssleep_interval is %r: a Go duration above zero such as 60s, 5m or 1h30m" % (PREFIX, interval))
    if settings.get("mig_strategy") not in MIG_STRATEGIES + ("auto",):
        found.append("%smig_strategy is %r: none, single, mixed, or auto (the device plugin's)"
                     % (PREFIX, settings.get("mig_strategy")))
    if not isinstance(settings.get("use_node_feature_api"), bool):
        found.append("%suse_node_feature_api is %r: true or false" % (PREFIX, settings.get("use_node_feature_api")))
    elif not settings["use_node_feature_api"]:
        path = str(settings.get("features_dir") or "")
        if not posixpath.isabs(path) or posixpath.normpath(path) == "/":
            found.append("%sfeatures_dir is %r: the absolute host directory nfd-worker reads features from" % (PREFIX, path))
        elif nfd in ("deploy", "auto") and posixpath.normpath(path) != k8s_nfd.FEATURES_DIR:
            found.append("%sfeatures_dir is %r: the NFD this role deploys reads %s"
                         % (PREFIX, path, k8s_nfd.FEATURES_DIR))
    root = settings.get("driver_root")
    if root and not posixpath.isabs(str(root)):
        found.append("%sdriver_root is %r: an absolute host path, or empty" % (PREFIX, root))
    resources = settings.get("resources")
    if not isinstance(resources, dict) or not set(resources) <= {"requests", "limits"} or not resources.get("requests"):
        found.append("%sresources must be a dict with requests (and optionally limits)" % PREFIX)
    return found


def published(settings, cluster):
    strategy, by_env, mig = mig_strategy(settings)
    deployed = settings["nfd"] in ("deploy", "auto")
    labels = list(LABELS) + (["nvidia.com/mig.strategy"] if strategy != "none" else [])
    notes = []
    if not deployed and settings["use_node_feature_api"]:
        notes.append("the cluster's NFD must serve the NodeFeature API (nfd.k8s-sigs.io/v1alpha1) and publish"
                     " the nvidia.com label namespace (nfd-master extraLabelNs)")
    if not deployed and not settings["use_node_feature_api"]:
        notes.append("GFD writes %s/gfd on each node: that must be the features.d directory the cluster's"
                     " nfd-worker reads, and nfd-master must publish the nvidia.com namespace" % settings["features_dir"])
    if cluster.get("mig_enabled") and strategy == "none" and not mig:
        notes.append("MIG is on on some GPU node but the MIG strategy is none: GFD labels the full GPUs")
    return {
        "image": ko.image_ref(cluster, settings["image"]),
        "namespace": cluster["namespace"],
        "daemonsets": [NAME] + ([k8s_nfd.WORKER] if deployed else []),
        "deployments": [k8s_nfd.MASTER] if deployed else [],
        "nfd": "deployed" if deployed else "existing",
        "nfd_image": ko.image_ref(cluster, settings["nfd_image"]) if deployed else None,
        "node_feature_api": bool(settings["use_node_feature_api"]),
        "features_dir": None if settings["use_node_feature_api"] else settings["features_dir"],
        # Per node: each node's chosen device plugin configuration decides (strategy is the default's).
        "mig_strategy": strategy,
        "mig_strategy_per_node": not by_env,
        "config_map": _config_map(settings),
        "labels": labels,
        "sharing_labels": list(SHARING_LABELS),
        "notes": notes,
    }
