# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dcgm_exporter role's objects: the DCGM exporter DaemonSet, its counters and its Service.

``settings`` are the role's variables without the ``dcgm_exporter_`` prefix, every
default filled in::

    image {registry, repository, tag, digest}, counters [{field, type, help}],
    extra_counters [..], profiling (bool), port (int), pod_labels (bool),
    remote_hostengine ("" or host:port), pod_resources_path, resources {requests, limits},
    service_monitor {enabled, interval, labels, honor_labels}

``cluster`` is the gpu_cluster role's fact (see k8s_objects).

Facts read from NVIDIA/dcgm-exporter (pkg/cmd/app.go, etc/default-counters.csv,
internal/pkg/counters, docker/Dockerfile, deployment/) and the GPU Operator's
assets/state-dcgm-exporter:

- The counters file is CSV read by Go's encoding/csv with ``#`` comments: exactly three
  fields per line (field, Prometheus type, help), so a help text may hold no comma,
  double quote or line break. ``-f``/``--collectors`` (env DCGM_EXPORTER_COLLECTORS)
  names it; the exporter also reloads it when the file changes.
- DCGM_FI_PROF_* (profiling, "DCP") fields need CAP_SYS_ADMIN in the process that runs
  the host engine; the image runs as root for that reason (a capability added to a
  non-root container user never becomes effective).
- The image sets NVIDIA_VISIBLE_DEVICES=all, so with the NVIDIA runtime (a runtimeClass
  or the default runtime) the exporter sees every GPU without requesting nvidia.com/gpu.
- ``-r HOST:PORT`` (or tcp://, unix://, vsock:// URIs) uses a running nv-hostengine; without
  it the exporter embeds its own host engine.
- Pod mapping reads the kubelet's pod-resources socket
  (/var/lib/kubelet/pod-resources/kubelet.sock); pod labels need the pods API
  (DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS).
- /health answers on the metrics port; /metrics is the scrape path.
"""

from __future__ import absolute_import, division, print_function

import re

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import k8s_objects as ko

PREFIX = "dcgm_exporter_"
COMPONENT = "dcgm-exporter"
NAME = "nvidia-dcgm-exporter"
COUNTERS_KEY = "counters.csv"
# Our own directory beside the image's /etc/dcgm-exporter files (which stay unused but
# visible); a directory mount, not a subPath, so the file is updated in place too.
COUNTERS_DIR = "/etc/dcgm-exporter/gpunode"
COUNTERS_PATH = "%s/%s" % (COUNTERS_DIR, COUNTERS_KEY)
POD_RESOURCES = "/var/lib/kubelet/pod-resources"
TYPES = ("gauge", "counter", "label")
PROFILING_PREFIX = "DCGM_FI_PROF_"
FIELD_RE = re.compile(r"^DCGM_(FI|EXP)_[A-Z0-9_]+$")
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
HOSTENGINE_RE = re.compile(r"^(tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):([0-9]{1,5})$")
SOCKET_RE = re.compile(r"^unix:///.+$")
VSOCK_RE = re.compile(r"^vsock://[0-9]+:([0-9]{1,5})$")


def counter_list(settings):
    """The counters the exporter collects, in order: the role's set, then the user's extra ones.

    With profiling off the DCGM_FI_PROF_* fields of the role's set are left out (an extra
    profiling field is a problem, not silently dropped).
    """
    found = []
    for counter in settings.get("counters") or []:
        if not settings.get("profiling") and str(counter.get("field", "")).startswith(PROFILING_PREFIX):
            continue
        found.append(counter)
    return found + list(settings.get("extra_counters") or [])


def counters_csv(settings):
    """The counters file: a header, then one ``FIELD, type, help`` line per counter."""
    lines = [
        "# DCGM exporter counters, written by the gpunode.nvidia dcgm_exporter role.",
        "# Set dcgm_exporter_counters / dcgm_exporter_extra_counters instead of editing this ConfigMap.",
        "# Format: DCGM field, Prometheus type (gauge, counter or label), help text.",
    ]
    for counter in counter_list(settings):
        lines.append("%s, %s, %s" % (counter["field"], counter["type"], str(counter.get("help", "")).strip()))
    return "\n".join(lines) + "\n"


def _uses_api(settings):
    return bool(settings.get("pod_labels"))


def _service_monitor(settings):
    return dict({"enabled": False, "interval": "15s", "labels": {}, "honor_labels": False}, **(settings.get("service_monitor") or {}))


def _capabilities(settings):
    return ["SYS_ADMIN"] if settings.get("profiling") else []


def _env(settings):
    env = [
        {"name": "DCGM_EXPORTER_LISTEN", "value": ":%d" % int(settings["port"])},
        {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
        # Explicit although the image sets it: every GPU of the node, none requested.
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    if settings.get("pod_labels"):
        env.append({"name": "DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS", "value": "true"})
    return env


def _args(settings):
    args = ["-f", COUNTERS_PATH]
    if settings.get("remote_hostengine"):
        args += ["-r", settings["remote_hostengine"]]
    return args


def _resources(settings):
    resources = settings.get("resources") or {}
    found = {"requests": dict(resources.get("requests") or {"cpu": "100m", "memory": "128Mi"})}
    if resources.get("limits"):
        found["limits"] = dict(resources["limits"])
    return found


def _probe(port, **timing):
    probe = {"httpGet": {"path": "/health", "port": port, "scheme": "HTTP"}, "timeoutSeconds": 5}
    probe.update(timing)
    return probe


def container(settings, cluster):
    """The exporter container: root for the pod-resources socket and profiling, nothing else."""
    port = int(settings["port"])
    context = ko.security_context(add=_capabilities(settings))
    # Root: the kubelet's pod-resources socket is root's, and profiling needs CAP_SYS_ADMIN
    # effective in the process, which a non-root user never gets from the container's set.
    # The root filesystem stays writable: the NVIDIA runtime's createContainer hooks write the
    # container's /etc/ld.so.cache (and older images' entrypoints run ldconfig themselves).
    context.update({"runAsUser": 0, "runAsNonRoot": False})
    pod_resources = settings.get("pod_resources_path") or POD_RESOURCES
    return {
        "name": "exporter",
        "image": ko.image_ref(cluster, settings["image"]),
        "imagePullPolicy": "IfNotPresent",
        "args": _args(settings),
        "env": _env(settings),
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "livenessProbe": _probe(port, initialDelaySeconds=45, periodSeconds=10, failureThreshold=3),
        "readinessProbe": _probe(port, initialDelaySeconds=15, periodSeconds=10),
        "resources": _resources(settings),
        "securityContext": context,
        "volumeMounts": [
            ko.host_path("pod-gpu-resources", pod_resources, mount_path=POD_RESOURCES)[1],
            {"name": "counters", "mountPath": COUNTERS_DIR, "readOnly": True},
        ],
    }


def objects(settings, cluster):
    """ServiceAccount, pod-label RBAC (only with pod labels), counters, DaemonSet, Service, ServiceMonitor."""
    found = []
    account = ko.service_account(NAME, cluster, COMPONENT)
    # The exporter reaches the API only for pod labels; without them no token is mounted.
    account["automountServiceAccountToken"] = _uses_api(settings)
    found.append(account)
    if settings.get("pod_labels"):
        # Pods on a node run in every namespace: reading their labels is cluster-wide.
        found += ko.cluster_role(NAME, cluster, COMPONENT, [ko.rule([""], ["pods"], ["get", "list", "watch"])])
    csv = counters_csv(settings)
    found.append(ko.config_map(NAME + "-counters", cluster, COMPONENT, {COUNTERS_KEY: csv}))
    pod_resources = settings.get("pod_resources_path") or POD_RESOURCES
    volumes = [
        ko.host_path("pod-gpu-resources", pod_resources, mount_path=POD_RESOURCES)[0],
        {"name": "counters", "configMap": {"name": NAME + "-counters"}},
    ]
    spec = ko.pod_spec(cluster, NAME, [container(settings, cluster)], volumes=volumes, extra={
        "automountServiceAccountToken": _uses_api(settings),
        # A SIGKILLed exporter has frozen GPUs (NVIDIA/dcgm-exporter#84): time to stop cleanly.
        "terminationGracePeriodSeconds": 60,
    })
    found.append(ko.daemonset(NAME, cluster, COMPONENT, spec, checksum_of={COUNTERS_KEY: csv}))
    found.append(service(settings, cluster))
    if _service_monitor(settings)["enabled"]:
        found.append(service_monitor(settings, cluster))
    return found


def service(settings, cluster):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ko.metadata(NAME, cluster, COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": ko.selector(COMPONENT),
            "ports": [{"name": "metrics", "port": int(settings["port"]), "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def service_monitor(settings, cluster):
    """A Prometheus Operator ServiceMonitor on the Service's metrics port."""
    monitor = _service_monitor(settings)
    meta = ko.metadata(NAME, cluster, COMPONENT)
    for key, value in sorted((monitor.get("labels") or {}).items()):
        meta["labels"][key] = str(value)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": ko.selector(COMPONENT)},
            "namespaceSelector": {"matchNames": [cluster["namespace"]]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": monitor["interval"],
                           "honorLabels": bool(monitor.get("honor_labels"))}],
        },
    }


def _counter_problems(name, counters, seen):
    found = []
    if not isinstance(counters, list):
        return ["%s must be a list of {field, type, help}" % name]
    for index, counter in enumerate(counters):
        where = "%s[%d]" % (name, index)
        if not isinstance(counter, dict):
            found.append("%s must be a dict with field, type and help" % where)
            continue
        unknown = sorted(set(counter) - {"field", "type", "help"})
        if unknown:
            found.append("%s has unknown keys %s: a counter has field, type and help" % (where, ", ".join(unknown)))
        field = str(counter.get("field") or "")
        if not FIELD_RE.match(field):
            found.append("%s.field is %r: a DCGM field name such as DCGM_FI_DEV_GPU_TEMP (DCGM_FI_* or the exporter's DCGM_EXP_*)"
                         % (where, counter.get("field")))
        elif field in seen:
            found.append("%s.field %s is given twice (first in %s)" % (where, field, seen[field]))
        else:
            seen[field] = where
        if counter.get("type") not in TYPES:
            found.append("%s.type is %r: one of %s" % (where, counter.get("type"), ", ".join(TYPES)))
        help_text = counter.get("help")
        if not isinstance(help_text, str) or not help_text.strip():
            found.append("%s.help is empty: every counter needs a help text" % where)
        elif any(c in help_text for c in ',"\n\r'):
            found.append("%s.help %r holds a comma, double quote or line break, which the exporter's CSV reader refuses"
                         % (where, help_text))
    return found


def _hostengine_problems(value):
    if not value:
        return []
    value = str(value)
    match = HOSTENGINE_RE.match(value) or VSOCK_RE.match(value)
    if SOCKET_RE.match(value) or (match and 1 <= int(match.groups()[-1]) <= 65535):
        return []
    return ["%sremote_hostengine is %r: HOST:PORT of a running nv-hostengine (such as localhost:5555), or tcp://HOST:PORT,"
            " unix:///SOCKET, vsock://CID:PORT; empty embeds the host engine" % (PREFIX, value)]


def problems(settings, cluster):
    """Why the settings cannot be applied, one line each, every line naming its variable."""
    found = ko.image_problems(PREFIX + "image", settings.get("image"))
    seen = {}
    found += _counter_problems(PREFIX + "counters", settings.get("counters"), seen)
    found += _counter_problems(PREFIX + "extra_counters", settings.get("extra_counters"), seen)
    if not settings.get("profiling"):
        for index, counter in enumerate(settings.get("extra_counters") or []):
            if isinstance(counter, dict) and str(counter.get("field", "")).startswith(PROFILING_PREFIX):
                found.append("%sextra_counters[%d].field %s is a profiling field: it needs dcgm_exporter_profiling: true"
                             % (PREFIX, index, counter["field"]))
    port = settings.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append("%sport is %r: a port number from 1 to 65535" % (PREFIX, port))
    monitor = settings.get("service_monitor")
    if not isinstance(monitor, dict):
        found.append("%sservice_monitor must be a dict with enabled, interval, labels and honor_labels" % PREFIX)
    else:
        unknown = sorted(set(monitor) - {"enabled", "interval", "labels", "honor_labels"})
        if unknown:
            found.append("%sservice_monitor has unknown keys %s: it takes enabled, interval, labels and honor_labels"
                         % (PREFIX, ", ".join(unknown)))
        interval = _service_monitor(settings)["interval"]
        if not isinstance(interval, str) or not DURATION_RE.match(interval) or not re.search(r"[1-9]", interval):
            found.append("%sservice_monitor.interval is %r: a Prometheus duration such as 15s, 1m or 1m30s" % (PREFIX, interval))
        labels = monitor.get("labels") or {}
        if not isinstance(labels, dict):
            found.append("%sservice_monitor.labels must be a dict of label: value" % PREFIX)
        else:
            for key in sorted(labels, key=str):
                if not LABEL_KEY_RE.match(str(key)):
                    found.append("%sservice_monitor.labels key %r is not a Kubernetes label name" % (PREFIX, key))
    found += _hostengine_problems(settings.get("remote_hostengine"))
    path = settings.get("pod_resources_path")
    if not isinstance(path, str) or not path.startswith("/"):
        found.append("%spod_resources_path is %r: the kubelet's pod-resources directory, an absolute path" % (PREFIX, path))
    return found


def published(settings, cluster):
    """gpunode_dcgm_exporter: what was resolved, for validate and the report."""
    return {
        "image": ko.image_ref(cluster, settings["image"]),
        "namespace": cluster["namespace"],
        "daemonset": NAME,
        "service": NAME,
        "port": int(settings["port"]),
        "service_monitor": bool(_service_monitor(settings)["enabled"]),
        "profiling": bool(settings.get("profiling")),
        "pod_labels": bool(settings.get("pod_labels")),
        "remote_hostengine": settings.get("remote_hostengine") or "",
        "counters": [c["field"] for c in counter_list(settings)],
    }
