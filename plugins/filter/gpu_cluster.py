# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu_cluster role's decisions: the GPU nodes it saw, the settings every Kubernetes role shares.

Kept in Python so each verdict is tested (tests/unit/plugins/filter/test_gpu_cluster.py).
"""

from __future__ import absolute_import, division, print_function

import base64
import json
import re

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects
from ansible_collections.gpunode.nvidia.plugins.plugin_utils.published import host_fact
from ansible_collections.gpunode.nvidia.plugins.plugin_utils.role_inputs import DNS_LABEL, namespace_problem

# A Kubernetes node name is a DNS-1123 subdomain.
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PERCENT = re.compile(r"^([1-9][0-9]?|100)%$")
SELECTIONS = ("gpu-present", "nfd", "either")


def _node_name(hostvars, host, var):
    try:
        return hostvars[host].get(var) or host
    except (KeyError, AttributeError, TypeError):
        return host


def gpu_cluster_nodes(hostvars, hosts, node_name_var="gpu_cluster_node_name"):
    """{inventory host: what the cluster needs of it} for the GPU hosts that ran the host roles.

    A host that never ran preflight in this run (not in it, or unreachable) is left out: nothing is
    known of it, and it must not be labelled as a GPU node on a guess.
    """
    nodes = {}
    for host in hosts or []:
        preflight = host_fact(hostvars, host, "gpunode_preflight")
        if preflight is None:
            continue
        toolkit = host_fact(hostvars, host, "gpunode_container_toolkit") or {}
        containerd = host_fact(hostvars, host, "gpunode_containerd") or {}
        stages = (host_fact(hostvars, host, "gpunode_validate") or {}).get("stages")
        driver_stage = next((s for s in stages or [] if isinstance(s, dict) and s.get("stage") == "driver"), {})
        gpus = (driver_stage.get("details") or {}).get("gpus") or []
        nodes[host] = {
            "node_name": str(_node_name(hostvars, host, node_name_var)),
            "gpus": int((preflight.get("gpus") or {}).get("count") or 0),
            "cdi_enabled": bool(toolkit.get("cdi_enabled")),
            "mig_enabled": any(bool(g.get("mig_enabled")) for g in gpus if isinstance(g, dict)),
            "runtime_name": ((containerd.get("runtime") or {}).get("name")) or None,
        }
    return nodes


def gpu_cluster_problems(inputs):
    """Problems of the gpu_cluster role's inputs, one line each, naming the variable."""
    found = []
    problem = namespace_problem("gpu_cluster_namespace", inputs.get("namespace"))
    if problem:
        found.append(problem)
    runtime_class = inputs.get("runtime_class")
    if runtime_class and not (isinstance(runtime_class, str) and DNS_SUBDOMAIN.match(runtime_class)):
        found.append("gpu_cluster_runtime_class is %r: a RuntimeClass name is a DNS-1123 subdomain, such as nvidia" % (runtime_class,))
    handler = inputs.get("runtime_class_handler")
    if handler not in (None, "", "auto") and not (isinstance(handler, str) and DNS_LABEL.match(handler)):
        found.append("gpu_cluster_runtime_class_handler is %r: the containerd runtime name, a DNS-1123 label such as nvidia" % (handler,))
    if inputs.get("use_runtime_class") and not runtime_class:
        found.append("gpu_cluster_use_runtime_class is true but gpu_cluster_runtime_class is empty: name the RuntimeClass the"
                     " pods use, or set gpu_cluster_use_runtime_class: false (then nvidia must be containerd's default runtime)")
    if inputs.get("node_selection") not in SELECTIONS:
        found.append("gpu_cluster_node_selection is %r: one of %s" % (inputs.get("node_selection"), ", ".join(SELECTIONS)))
    unavailable = inputs.get("max_unavailable")
    if not (isinstance(unavailable, int) and not isinstance(unavailable, bool) and unavailable >= 1
            or isinstance(unavailable, str) and (PERCENT.match(unavailable) or unavailable.isdigit() and int(unavailable) >= 1)):
        found.append("gpu_cluster_max_unavailable is %r: a count of nodes from 1 or a percentage such as 10%%" % (unavailable,))
    for name in inputs.get("image_pull_secrets") or []:
        if not (isinstance(name, str) and DNS_SUBDOMAIN.match(name)):
            found.append("gpu_cluster_image_pull_secrets has %r: the name of a Secret in gpu_cluster_namespace" % (name,))
    credentials = inputs.get("image_pull_credentials") or []
    for name in credentials:
        if not (isinstance(name, str) and DNS_SUBDOMAIN.match(name)):
            found.append("gpu_cluster_image_pull_credentials has the name %r: a Secret's name is a DNS-1123 subdomain" % (name,))
    for name in sorted(set(n for n in credentials if credentials.count(n) > 1)):
        found.append("gpu_cluster_image_pull_credentials names the Secret %s more than once" % name)
    if inputs.get("mode") == "apply" and inputs.get("kubeconfig") and not inputs.get("kubeconfig_exists"):
        found.append("gpu_cluster_kubeconfig is %s, which does not exist on %s: give the path of a kubeconfig there"
                     % (inputs["kubeconfig"], inputs.get("control_host") or "the control host"))
    for host, node in sorted((inputs.get("nodes") or {}).items()):
        if not DNS_SUBDOMAIN.match(node["node_name"]):
            found.append("gpu_cluster_node_name of %s is %r: a Kubernetes node name is a DNS-1123 subdomain" % (host, node["node_name"]))
    return found


def _handler(inputs, nodes):
    if inputs.get("runtime_class_handler") not in (None, "", "auto"):
        return inputs["runtime_class_handler"]
    names = sorted(set(n["runtime_name"] for n in nodes.values() if n.get("runtime_name")))
    return names[0] if len(names) == 1 else "nvidia"


def _unique(names):
    return [name for i, name in enumerate(names) if name not in names[:i]]


def gpu_cluster_settings(inputs):
    """gpunode_gpu_cluster: what every Kubernetes role builds its objects from (k8s_objects' ``cluster``)."""
    nodes = inputs.get("nodes") or {}
    unavailable = inputs.get("max_unavailable", 1)
    if isinstance(unavailable, str) and unavailable.isdigit():
        unavailable = int(unavailable)
    handlers = sorted(set(n["runtime_name"] for n in nodes.values() if n.get("runtime_name")))
    settings = {
        "mode": inputs["mode"],
        "render_dir": inputs.get("render_dir") if inputs["mode"] == "render" else None,
        "kubeconfig": inputs.get("kubeconfig") or None,
        "context": inputs.get("context") or None,
        "namespace": inputs["namespace"],
        "registry": inputs.get("registry") or "",
        "image_pull_secrets": _unique(list(inputs.get("image_pull_secrets") or []) + list(inputs.get("image_pull_credentials") or [])),
        # The Secrets this role makes from credentials (names only) and whether render mode writes them.
        "pull_secrets_made": list(inputs.get("image_pull_credentials") or []),
        "render_secrets": bool(inputs.get("render_secrets")),
        "runtime_class": inputs.get("runtime_class") or "",
        "runtime_class_handler": _handler(inputs, nodes),
        "use_runtime_class": bool(inputs.get("use_runtime_class")),
        "tolerations": list(inputs.get("tolerations") or []),
        "priority_class": inputs.get("priority_class") or "",
        "node_selection": inputs.get("node_selection") or "either",
        "max_unavailable": unavailable,
        "labels": dict(inputs.get("labels") or {}),
        "label_nodes": bool(inputs.get("label_nodes")),
        "wait": bool(inputs.get("wait", True)),
        "wait_timeout": int(inputs.get("wait_timeout") or 600),
        # CDI device lists only where every GPU node can resolve them; MIG where any node has it on.
        "cdi_enabled": bool(nodes) and all(n["cdi_enabled"] for n in nodes.values() if n["gpus"]),
        "mig_enabled": any(n["mig_enabled"] for n in nodes.values()),
        "nodes": dict((host, dict(node)) for host, node in sorted(nodes.items())),
        "warnings": [],
    }
    if len(handlers) > 1 and inputs.get("runtime_class_handler") in (None, "", "auto"):
        settings["warnings"].append(
            "the GPU nodes register the NVIDIA runtime under different names (%s): the RuntimeClass handler is %s; set"
            " gpu_cluster_runtime_class_handler" % (", ".join(handlers), settings["runtime_class_handler"]))
    return settings


def gpu_cluster_objects(cluster):
    """The cluster-wide objects (namespace, RuntimeClass) and the node-label patches (apply mode only)."""
    objects = k8s_objects.cluster_objects(cluster)
    patches = []
    if cluster.get("label_nodes") and cluster.get("mode") == "apply":
        patches = k8s_objects.node_label_patches(dict(
            (n["node_name"], {"gpus": n["gpus"]}) for n in (cluster.get("nodes") or {}).values()))
    return {"objects": objects, "node_labels": patches}


def _name(obj):
    meta = obj.get("metadata") or {}
    return "%s %s%s" % (obj.get("kind"), meta.get("namespace") + "/" if meta.get("namespace") else "", meta.get("name"))


def gpu_cluster_outcome(result, component, objects):
    """What one apply or render did, short enough for a report: per object, and each DaemonSet's rollout."""
    outcome = {"component": component, "objects": [_name(o) for o in objects or []], "changed": bool((result or {}).get("changed"))}
    result = result or {}
    if result.get("skipped"):
        outcome["mode"] = None
        return outcome
    if "files" in result or "changed_files" in result:
        outcome.update(mode="render", files=list(result.get("files") or []), changed_files=list(result.get("changed_files") or []),
                       removed_files=list(result.get("removed_files") or []))
        return outcome
    inner = result.get("result") or {}
    results = inner.get("results") if isinstance(inner.get("results"), list) else [result]
    rollout = {}
    for item in results:
        instance = item.get("result") or {}
        if instance.get("kind") != "DaemonSet":
            continue
        status = instance.get("status") or {}
        rollout[(instance.get("metadata") or {}).get("name")] = {
            "desired": status.get("desiredNumberScheduled"), "ready": status.get("numberReady"),
            "updated": status.get("updatedNumberScheduled"), "unavailable": status.get("numberUnavailable") or 0}
    outcome.update(mode="apply", rollout=rollout, failed=bool(result.get("failed")), msg=result.get("msg"))
    return outcome


def gpu_cluster_report(outcome):
    """One line for a component: what was rendered, or applied and how far each DaemonSet rolled out."""
    outcome = outcome or {}
    name = outcome.get("component")
    if outcome.get("mode") == "render":
        return "%s: rendered %d file(s), %d changed, %d removed" % (
            name, len(outcome.get("files") or []), len(outcome.get("changed_files") or []), len(outcome.get("removed_files") or []))
    if outcome.get("mode") != "apply":
        return "%s: nothing applied or rendered" % name
    if outcome.get("failed"):
        return "%s: apply FAILED: %s" % (name, outcome.get("msg") or "no message")
    parts = ["%s %s ready %s/%s, updated %s" % ("DaemonSet", ds, r.get("ready"), r.get("desired"), r.get("updated"))
             for ds, r in sorted((outcome.get("rollout") or {}).items())]
    changed = " (changed)" if outcome.get("changed") else ""
    rollout = "; " + "; ".join(parts) if parts else ""
    return "%s: applied %d object(s)%s%s" % (name, len(outcome.get("objects") or []), changed, rollout)


def gpu_cluster_pull_secrets(credentials, cluster):
    """The image pull Secrets of gpu_cluster_image_pull_credentials (they hold the passwords: no_log tasks only)."""
    return [k8s_objects.pull_secret(cluster, credential) for credential in credentials or []]


def _secret_values(credentials):
    values = set()
    for secret in gpu_cluster_pull_secrets(credentials, {"namespace": "-", "labels": {}}):
        encoded = secret["data"][".dockerconfigjson"]
        values.update([encoded, base64.b64decode(encoded).decode("utf-8")])
        values.update(entry[key] for entry in json.loads(base64.b64decode(encoded))["auths"].values() for key in ("password", "auth"))
    return sorted((v for v in values if v), key=len, reverse=True)


def gpu_cluster_secrets_report(result, credentials, cluster):
    """What became of the image pull Secrets: one line, with any value of theirs taken out of an error message."""
    names = ", ".join(c["name"] for c in credentials or []) or "none"
    result = result or {}
    if cluster.get("mode") == "render":
        if not cluster.get("render_secrets"):
            return {"failed": False, "line": (
                "image pull Secret(s) %s not rendered (gpu_cluster_render_secrets is false): create them in namespace %s"
                " (kubectl create secret docker-registry), or seal them, before the GitOps tool applies the manifests"
                % (names, cluster.get("namespace")))}
        return {"failed": False, "line": "image pull Secret(s) %s rendered with mode 0600%s" % (
            names, " (changed)" if result.get("changed") else "")}
    if result.get("failed"):
        msg = str(result.get("msg") or "no message")
        for value in _secret_values(credentials):
            msg = msg.replace(value, "<masked>")
        return {"failed": True, "line": "image pull Secret(s) %s: apply FAILED: %s" % (names, msg)}
    return {"failed": False, "line": "image pull Secret(s) %s applied%s" % (names, " (changed)" if result.get("changed") else "")}


def gpu_cluster_summary(cluster, outcome, secrets=None):
    """One line for the run: where the objects went and which GPU nodes were labelled."""
    gpu_nodes = sorted(n["node_name"] for n in (cluster.get("nodes") or {}).values() if n["gpus"])
    where = ("rendered to %s" % cluster["render_dir"]) if cluster["mode"] == "render" else "applied"
    text = "namespace %s, RuntimeClass %s (handler %s) %s; GPU nodes: %s" % (
        cluster["namespace"], cluster["runtime_class"] or "(none)", cluster["runtime_class_handler"], where,
        ", ".join(gpu_nodes) or "none seen in this run")
    if cluster["mode"] == "render" and cluster.get("label_nodes"):
        text += "; render mode labels no node: label the GPU nodes %s=true yourself or use NFD" % k8s_objects.GPU_PRESENT
    lines = [text, gpu_cluster_report(outcome)]
    if secrets:
        lines.append(secrets["line"])
    return lines + list(cluster.get("warnings") or [])


class FilterModule(object):
    def filters(self):
        return {
            "gpu_cluster_nodes": gpu_cluster_nodes,
            "gpu_cluster_problems": gpu_cluster_problems,
            "gpu_cluster_settings": gpu_cluster_settings,
            "gpu_cluster_objects": gpu_cluster_objects,
            "gpu_cluster_outcome": gpu_cluster_outcome,
            "gpu_cluster_summary": gpu_cluster_summary,
            "gpu_cluster_report": gpu_cluster_report,
            "gpu_cluster_pull_secrets": gpu_cluster_pull_secrets,
            "gpu_cluster_secrets_report": gpu_cluster_secrets_report,
        }
