# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Kubernetes roles share: names, labels, images, scheduling and the DaemonSet frame.

Every object the roles device_plugin, gpu_feature_discovery and dcgm_exporter apply
(or render for GitOps) is built here or from pieces built here, from two dicts:

``cluster``: the gpu_cluster role's published fact ``gpunode_gpu_cluster``::

    namespace, registry ("" = each image's own), image_pull_secrets [names],
    runtime_class (name or ""), runtime_class_handler, use_runtime_class (bool),
    tolerations [..], priority_class ("" = none), node_selection (gpu-present|nfd|either),
    max_unavailable (int or "N%"), labels {..}, cdi_enabled (bool), mig_enabled (bool)

``image``: a role's image setting ``{registry, repository, tag, digest}``.

The builders are pure functions: the same inputs give the same objects, in the
same order, whether they are then applied or rendered.
"""

from __future__ import absolute_import, division, print_function

import base64
import hashlib
import json

PART_OF = "gpunode-nvidia"
MANAGER = "gpunode.nvidia"
CHECKSUM_ANNOTATION = "gpunode.nvidia/config-checksum"
GPU_PRESENT = "nvidia.com/gpu.present"
NFD_PCI_NVIDIA = "feature.node.kubernetes.io/pci-10de.present"
# The runtime's default syscall filter for every pod (it opens what an added capability needs).
POD_SECURITY = {"seccompProfile": {"type": "RuntimeDefault"}}
# The device plugin's per-node choice of configuration (upstream's label).
CONFIG_LABEL = "nvidia.com/device-plugin.config"
# What a small helper container (config-manager: one informer on its own Node) asks for.
SIDECAR_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}


def labels(cluster, component, instance=None):
    """The labels every object of ``component`` carries (the selector's two first)."""
    found = {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": instance or component,
    }
    found.update({"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/managed-by": MANAGER})
    for key, value in sorted((cluster.get("labels") or {}).items()):
        found.setdefault(key, str(value))
    return found


def selector(component, instance=None):
    """The labels a workload selects its pods by: stable, so a re-apply never needs a new selector."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": instance or component}


def metadata(name, cluster, component, *, namespaced=True, instance=None, annotations=None):
    meta = {"name": name}
    if namespaced:
        meta["namespace"] = cluster["namespace"]
    meta["labels"] = labels(cluster, component, instance)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def image_ref(cluster, image):
    """registry/repository:tag[@digest]; a cluster registry (a mirror) replaces every image's own."""
    registry = (cluster.get("registry") or image.get("registry") or "").rstrip("/")
    ref = "%s/%s" % (registry, image["repository"]) if registry else image["repository"]
    ref += ":%s" % image["tag"]
    if image.get("digest"):
        ref += "@%s" % image["digest"]
    return ref


def image_problems(name, image):
    """Why an image setting cannot be pinned (one line each), for the role's preflight."""
    if not isinstance(image, dict):
        return ["%s must be a dict with repository and tag (and optionally registry and digest)" % name]
    found = []
    repository, tag, digest = image.get("repository"), image.get("tag"), image.get("digest")
    if not repository:
        found.append("%s.repository is empty" % name)
    elif ":" in str(repository).rsplit("/", 1)[-1] or "@" in str(repository):
        found.append("%s.repository is %r: give the tag and digest in %s.tag and %s.digest" % (name, repository, name, name))
    if not tag:
        found.append("%s.tag is empty: every image is pinned to a tag (and optionally a digest), never the registry's latest" % name)
    elif str(tag) == "latest":
        found.append("%s.tag is latest: pin a version such as the collection's default" % name)
    if digest and not (str(digest).startswith("sha256:") and len(str(digest)) == 71
                       and all(c in "0123456789abcdef" for c in str(digest)[7:])):
        found.append("%s.digest is %r, not sha256: followed by 64 lower-case hex digits" % (name, digest))
    return found


def checksum(*items):
    """A stable digest of configuration objects: put on a pod template, a change rolls the pods."""
    text = json.dumps(items, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def node_affinity(cluster):
    """Schedule on GPU nodes: the label the gpu_cluster role sets, NFD's PCI label, or either."""
    terms = {
        "gpu-present": [[GPU_PRESENT]],
        "nfd": [[NFD_PCI_NVIDIA]],
        "either": [[NFD_PCI_NVIDIA], [GPU_PRESENT]],
    }[cluster.get("node_selection") or "either"]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": key, "operator": "In", "values": ["true"]} for key in term]} for term in terms]}}}


def security_context(add=(), privileged=False, read_only_root=False):
    """A container's securityContext: nothing beyond what the component needs."""
    if privileged:
        return {"privileged": True}
    context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if add:
        context["capabilities"]["add"] = sorted(set(add))
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    return context


def host_path(name, path, kind="Directory", read_only=True, mount_path=None):
    """(volume, volumeMount) for a host directory, read-only unless the component writes there."""
    volume = {"name": name, "hostPath": {"path": path, "type": kind}}
    mount = {"name": name, "mountPath": mount_path or path}
    if read_only:
        mount["readOnly"] = True
    return volume, mount


def pod_spec(cluster, service_account, containers, *, volumes=(), init_containers=(), runtime_class=True, extra=None):
    """A GPU node pod: tolerations, priority, affinity, pull secrets and runtimeClassName from the cluster."""
    spec = {"serviceAccountName": service_account}
    if service_account is None:
        spec = {"automountServiceAccountToken": False}
    spec.update({
        "securityContext": {"seccompProfile": dict(POD_SECURITY["seccompProfile"])},
        "affinity": node_affinity(cluster),
        "tolerations": list(cluster.get("tolerations") or []),
    })
    if cluster.get("priority_class"):
        spec["priorityClassName"] = cluster["priority_class"]
    if runtime_class and cluster.get("use_runtime_class") and cluster.get("runtime_class"):
        spec["runtimeClassName"] = cluster["runtime_class"]
    if cluster.get("image_pull_secrets"):
        spec["imagePullSecrets"] = [{"name": n} for n in cluster["image_pull_secrets"]]
    if init_containers:
        spec["initContainers"] = list(init_containers)
    spec["containers"] = list(containers)
    if volumes:
        spec["volumes"] = list(volumes)
    spec.update(extra or {})
    return spec


def daemonset(name, cluster, component, spec, *, checksum_of=None, instance=None, max_unavailable=None):
    """A DaemonSet that rolls one node at a time (or cluster.max_unavailable) and re-rolls on config change."""
    template_meta = {"labels": labels(cluster, component, instance)}
    if checksum_of is not None:
        template_meta["annotations"] = {CHECKSUM_ANNOTATION: checksum(checksum_of)}
    unavailable = max_unavailable if max_unavailable is not None else cluster.get("max_unavailable", 1)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(name, cluster, component, instance=instance),
        "spec": {
            "selector": {"matchLabels": selector(component, instance)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": unavailable}},
            "template": {"metadata": template_meta, "spec": spec},
        },
    }


def service_account(name, cluster, component):
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(name, cluster, component),
            "automountServiceAccountToken": True}


def config_map(name, cluster, component, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(name, cluster, component),
            "data": {key: str(value) for key, value in data.items()}}


def rule(groups, resources, verbs):
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def cluster_role(name, cluster, component, rules):
    """A ClusterRole and its binding to the component's ServiceAccount (same name)."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": metadata(name, cluster, component, namespaced=False), "rules": list(rules)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": metadata(name, cluster, component, namespaced=False),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": cluster["namespace"]}]},
    ]


def namespaced_role(name, cluster, component, rules):
    """A Role and its RoleBinding, in the cluster's namespace, to the ServiceAccount of the same name."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": metadata(name, cluster, component), "rules": list(rules)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata(name, cluster, component),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": cluster["namespace"]}]},
    ]


def cluster_objects(cluster):
    """The gpu_cluster role's own objects: the namespace and the RuntimeClass."""
    objects = [{"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": cluster["namespace"], "labels": labels(cluster, "gpu-cluster")}}]
    if cluster.get("runtime_class"):
        objects.append({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                        "metadata": {"name": cluster["runtime_class"], "labels": labels(cluster, "gpu-cluster")},
                        "handler": cluster["runtime_class_handler"]})
    return objects


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def pull_secret(cluster, credential):
    """A kubernetes.io/dockerconfigjson Secret from ``{name, registry, username, password[, email]}``.

    The result holds the password: send it only from a no_log task (roles/gpu_cluster/tasks/pull_secrets.yml).
    """
    user, password = credential["username"], credential["password"]
    entry = {"username": user, "password": password, "auth": _b64("%s:%s" % (user, password))}
    if credential.get("email"):
        entry["email"] = credential["email"]
    config = json.dumps({"auths": {credential["registry"]: entry}}, sort_keys=True, separators=(",", ":"))
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": metadata(credential["name"], cluster, "gpu-cluster"),
            "data": {".dockerconfigjson": _b64(config)}}


def node_label_patches(nodes, present_label=GPU_PRESENT):
    """Partial Node objects for server-side apply: the GPU-present label (and a chosen config) per node.

    ``nodes``: {kubernetes node name: {"gpus": count, "config": device plugin config name or ""}}.
    A node without GPUs gets no patch: the label is only ever added where preflight saw a GPU.
    """
    patches = []
    for name in sorted(nodes):
        entry = nodes[name] or {}
        if not entry.get("gpus"):
            continue
        node_labels = {present_label: "true"}
        if entry.get("config"):
            node_labels[CONFIG_LABEL] = entry["config"]
        patches.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": node_labels}})
    return patches


def config_manager(image, config_map, default_config, process, oneshot):
    """The config-manager container of the device plugin image (device plugin and GFD alike).

    It copies the configuration named by the node's ``nvidia.com/device-plugin.config``
    label (or ``default_config``) from the ConfigMap mounted at /available-configs to
    /config/config.yaml; as a sidecar it watches the label and signals ``process``
    (the pod shares its process namespace) when the choice changes.
    """
    env = [
        {"name": "ONESHOT", "value": "true" if oneshot else "false"},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NODE_LABEL", "value": CONFIG_LABEL},
        {"name": "CONFIG_FILE_SRCDIR", "value": "/available-configs"},
        {"name": "CONFIG_FILE_DST", "value": "/config/config.yaml"},
        {"name": "DEFAULT_CONFIG", "value": default_config},
        {"name": "FALLBACK_STRATEGIES", "value": "named,single"},
        {"name": "SEND_SIGNAL", "value": "false" if oneshot else "true"},
        {"name": "SIGNAL", "value": "1"},
        {"name": "PROCESS_TO_SIGNAL", "value": process},
    ]
    return {
        "name": "config-manager-init" if oneshot else "config-manager",
        "image": image,
        "command": ["config-manager"],
        "env": env,
        "securityContext": security_context(read_only_root=True),
        "resources": {key: dict(value) for key, value in SIDECAR_RESOURCES.items()},
        "volumeMounts": [{"name": "available-configs", "mountPath": "/available-configs", "readOnly": True},
                         {"name": "config", "mountPath": "/config"}],
    }


def config_volumes(config_map):
    """The volumes config_manager mounts: the ConfigMap of named configs and the chosen one."""
    return [{"name": "available-configs", "configMap": {"name": config_map}}, {"name": "config", "emptyDir": {}}]
