# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node Feature Discovery as the gpu_feature_discovery role deploys it (gpu_feature_discovery_nfd: deploy).

GFD never labels a node itself: it writes a NodeFeature object (or a features.d file) that
nfd-master turns into node labels, so a cluster without NFD gets a pinned one from here:

- the CustomResourceDefinitions nfd-master reads: NodeFeature and NodeFeatureGroup (namespaced),
  NodeFeatureRule (cluster-wide), all ``nfd.k8s-sigs.io/v1alpha1``. The schemas are written here
  from the API types (the fields of ``spec``, and NodeFeatureGroup's ``status``) as upstream's
  generated CRDs have them; operators are left as strings, not enumerated, so a rule using an
  operator a later NFD adds is not refused by the schema;
- nfd-master, one replica (no leader election, so no Lease permissions; the Deployment is
  recreated rather than rolled so two masters never run at once), with ``extraLabelNs:
  ["nvidia.com"]`` in its configuration file so GFD's labels are published;
- nfd-worker on every node (it tolerates the GPU taints and the control plane's), the ``pci``
  source labelling by vendor only so ``feature.node.kubernetes.io/pci-10de.present`` appears
  on NVIDIA GPU nodes (the label the device plugin and GFD can be scheduled by). Every host
  path it reads is mounted read-only; it runs as a non-root user without capabilities.

nfd-gc (removes the NodeFeature objects of deleted nodes) is left out: GFD's and the worker's
NodeFeature objects carry owner references to their DaemonSet, and a stale object of a node that
no longer exists labels nothing.
"""

from __future__ import absolute_import, division, print_function

import yaml

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

MASTER = "nfd-master"
WORKER = "nfd-worker"
GROUP = "nfd.k8s-sigs.io"
VERSION = "v1alpha1"
CONF_DIR = "/etc/kubernetes/node-feature-discovery"
FEATURES_DIR = CONF_DIR + "/features.d"
PORT = 8080
# Non-root, as upstream runs both (nobody: the master reads only its ConfigMap, the worker only
# world-readable host files).
NOBODY = 65534
# NVIDIA GPUs are PCI class 03 (display: 0300 VGA, 0302 3D controller); the device plugin chart's
# NFD values also label network controllers (02, 0200, 0207). Labelling by vendor alone gives
# feature.node.kubernetes.io/pci-10de.present (NFD's default fields class+vendor would give
# pci-0302_10de.present).
PCI_CLASSES = ["02", "0200", "0207", "0300", "0302"]
MASTER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "4Gi"}}
WORKER_RESOURCES = {"requests": {"cpu": "5m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def _string_map():
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _match_expression():
    return {"type": "object", "required": ["op"], "properties": {
        "op": {"type": "string"},
        "value": {"type": "array", "items": {"type": "string"}},
    }}


def _match_features():
    term = {"type": "object", "required": ["feature"], "properties": {
        "feature": {"type": "string"},
        "matchExpressions": {"type": "object", "additionalProperties": _match_expression()},
        "matchName": _match_expression(),
    }}
    return {"type": "array", "items": term}


def _match_any():
    return {"type": "array", "items": {"type": "object", "required": ["matchFeatures"],
                                       "properties": {"matchFeatures": _match_features()}}}


def _node_feature_spec():
    def feature_set(elements):
        return {"type": "object", "additionalProperties": {"type": "object", "required": ["elements"],
                                                           "properties": {"elements": elements}}}
    instance = {"type": "object", "required": ["attributes"], "properties": {"attributes": _string_map()}}
    return {"type": "object", "properties": {
        "features": {"type": "object", "properties": {
            "attributes": feature_set(_string_map()),
            "flags": feature_set({"type": "object", "additionalProperties": {"type": "object"}}),
            "instances": feature_set({"type": "array", "items": instance}),
        }},
        "labels": _string_map(),
    }}


def _node_feature_rule_spec():
    taint = {"type": "object", "required": ["effect", "key"], "properties": {
        "effect": {"type": "string"}, "key": {"type": "string"},
        "timeAdded": {"type": "string", "format": "date-time"}, "value": {"type": "string"}}}
    rule = {"type": "object", "required": ["name"], "properties": {
        "annotations": _string_map(),
        "extendedResources": _string_map(),
        "labels": _string_map(),
        "labelsTemplate": {"type": "string"},
        "matchAny": _match_any(),
        "matchFeatures": _match_features(),
        "name": {"type": "string"},
        "taints": {"type": "array", "items": taint},
        "vars": _string_map(),
        "varsTemplate": {"type": "string"},
    }}
    return {"type": "object", "required": ["rules"], "properties": {"rules": {"type": "array", "items": rule}}}


def _node_feature_group_schema():
    rule = {"type": "object", "required": ["name"], "properties": {
        "matchAny": _match_any(), "matchFeatures": _match_features(), "name": {"type": "string"}}}
    nodes = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
             "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}
    return {
        "spec": {"type": "object", "required": ["featureGroupRules"],
                 "properties": {"featureGroupRules": {"type": "array", "items": rule}}},
        "status": {"type": "object", "properties": {"nodes": nodes}},
    }


def _crd(cluster, kind, plural, scope, properties, *, short=None, status=False):
    schema = {"type": "object", "required": ["spec"], "properties": dict({
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
    }, **properties)}
    names = {"kind": kind, "listKind": kind + "List", "plural": plural, "singular": kind.lower()}
    if short:
        names["shortNames"] = [short]
    version = {"name": VERSION, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
    if status:
        version["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": ko.metadata("%s.%s" % (plural, GROUP), cluster, "nfd", namespaced=False),
            "spec": {"group": GROUP, "names": names, "scope": scope, "versions": [version]}}


def crds(cluster):
    return [
        _crd(cluster, "NodeFeature", "nodefeatures", "Namespaced", {"spec": _node_feature_spec()}),
        _crd(cluster, "NodeFeatureGroup", "nodefeaturegroups", "Namespaced", _node_feature_group_schema(),
             short="nfg", status=True),
        _crd(cluster, "NodeFeatureRule", "nodefeaturerules", "Cluster", {"spec": _node_feature_rule_spec()}, short="nfr"),
    ]


def master_config():
    return {"extraLabelNs": ["nvidia.com"]}


def worker_config():
    return {"sources": {"pci": {"deviceClassWhitelist": list(PCI_CLASSES), "deviceLabelFields": ["vendor"]}}}


def _dump(config):
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=True)


def _health():
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    return dict(probe, initialDelaySeconds=10), dict(probe, initialDelaySeconds=5, failureThreshold=10)


def _env(*, pod=False):
    env = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    if pod:
        # The worker writes its NodeFeature in its own namespace, owned by its pod.
        env += [{"name": "KUBERNETES_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
    return env


def _container(name, cluster, image, *, resources, mounts, env):
    liveness, readiness = _health()
    context = ko.security_context(read_only_root=True)
    context.update({"runAsNonRoot": True, "runAsUser": NOBODY, "runAsGroup": NOBODY})
    return {"name": name, "image": ko.image_ref(cluster, image), "imagePullPolicy": "IfNotPresent",
            "command": [name], "env": env, "ports": [{"name": "http", "containerPort": PORT}],
            "livenessProbe": liveness, "readinessProbe": readiness, "resources": resources,
            "securityContext": context, "volumeMounts": mounts}


def _pull_secrets(cluster):
    return [{"name": n} for n in cluster.get("image_pull_secrets") or []]


def master(cluster, image):
    data = {"nfd-master.conf": _dump(master_config())}
    conf = ko.config_map(MASTER + "-conf", cluster, MASTER, data)
    container = _container(MASTER, cluster, image, resources=MASTER_RESOURCES, env=_env(),
                           mounts=[{"name": "conf", "mountPath": CONF_DIR, "readOnly": True}])
    spec = {
        "serviceAccountName": MASTER,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": dict(ko.POD_SECURITY["seccompProfile"])},
        # It runs anywhere; the control plane is preferred and tolerated, as upstream does.
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "Exists"}]}}]}},
        "tolerations": [{"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container],
        "volumes": [{"name": "conf", "configMap": {"name": MASTER + "-conf"}}],
    }
    if _pull_secrets(cluster):
        spec["imagePullSecrets"] = _pull_secrets(cluster)
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ko.metadata(MASTER, cluster, MASTER),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": ko.selector(MASTER)},
            "template": {"metadata": {"labels": ko.labels(cluster, MASTER),
                                      "annotations": {ko.CHECKSUM_ANNOTATION: ko.checksum(data)}},
                         "spec": spec},
        },
    }
    return conf, deployment


def _tolerations(cluster):
    found = list(cluster.get("tolerations") or [])
    control_plane = {"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"}
    if control_plane not in found:
        found.append(control_plane)
    return found


def worker(cluster, image):
    data = {"nfd-worker.conf": _dump(worker_config())}
    conf = ko.config_map(WORKER + "-conf", cluster, WORKER, data)
    host = [
        ko.host_path("host-boot", "/boot", kind="", mount_path="/host-boot"),
        ko.host_path("host-os-release", "/etc/os-release", kind="File", mount_path="/host-etc/os-release"),
        ko.host_path("host-sys", "/sys", mount_path="/host-sys"),
        ko.host_path("host-usr-lib", "/usr/lib", mount_path="/host-usr/lib"),
        ko.host_path("host-lib", "/lib", kind="", mount_path="/host-lib"),
        # Where GFD writes its label file when it does not use the NodeFeature API.
        ko.host_path("features-d", FEATURES_DIR, kind="DirectoryOrCreate"),
    ]
    mounts = [{"name": "conf", "mountPath": CONF_DIR, "readOnly": True}] + [m for _unused, m in host]
    container = _container(WORKER, cluster, image, resources=WORKER_RESOURCES, mounts=mounts, env=_env(pod=True))
    volumes = [{"name": "conf", "configMap": {"name": WORKER + "-conf"}}] + [v for v, _unused in host]
    spec = ko.pod_spec(cluster, WORKER, [container], volumes=volumes, runtime_class=False,
                       extra={"tolerations": _tolerations(cluster)})
    # Every node, not only GPU nodes: NFD's labels are what finds the GPU nodes.
    spec.pop("affinity")
    return conf, ko.daemonset(WORKER, cluster, WORKER, spec, checksum_of=data)


def master_rules():
    return [
        ko.rule([""], ["namespaces"], ["list", "watch"]),
        ko.rule([""], ["nodes"], ["get", "list", "patch", "update"]),
        # NodeFeatureRules may add extended resources, which live in the node's status.
        ko.rule([""], ["nodes/status"], ["get", "patch", "update"]),
        ko.rule([GROUP], ["nodefeatures", "nodefeaturerules"], ["get", "list", "watch"]),
        ko.rule([GROUP], ["nodefeaturegroups"], ["get", "list", "watch", "update"]),
        ko.rule([GROUP], ["nodefeaturegroups/status"], ["patch", "update"]),
    ]


def worker_rules():
    """(namespaced, cluster-wide): its own NodeFeature and pod, and the nodes."""
    return ([ko.rule([GROUP], ["nodefeatures"], ["create", "get", "update", "delete"]),
             ko.rule([""], ["pods"], ["get"])],
            [ko.rule([""], ["nodes"], ["get", "list"])])


def setup_objects(cluster, image):
    """What the workloads need first: CRDs, accounts, RBAC and configuration."""
    namespaced, cluster_wide = worker_rules()
    return (crds(cluster)
            + [ko.service_account(MASTER, cluster, MASTER), ko.service_account(WORKER, cluster, WORKER)]
            + ko.cluster_role(MASTER, cluster, MASTER, master_rules())
            + ko.cluster_role(WORKER, cluster, WORKER, cluster_wide)
            + ko.namespaced_role(WORKER, cluster, WORKER, namespaced)
            + [master(cluster, image)[0], worker(cluster, image)[0]])


def workload_objects(cluster, image):
    return [master(cluster, image)[1], worker(cluster, image)[1]]


def objects(cluster, image):
    """Every NFD object in apply order: CRDs, accounts and RBAC, configuration, workloads."""
    return setup_objects(cluster, image) + workload_objects(cluster, image)
