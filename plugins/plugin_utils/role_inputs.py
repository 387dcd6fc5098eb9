# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's role variables, checked once before any change.

Argument specs (roles/<role>/meta/argument_specs.yml) say each variable's type
and choices; Ansible checks them when a role starts, but prints the whole spec
with its refusal, and cannot express a range, a regular expression, a version
format, a DNS label or two settings that contradict each other. This module
holds those checks, in one place for every role, and finds variables that
carry a role's prefix but are no role's variable (a typo that Ansible would
ignore without a word).
"""

from __future__ import absolute_import, division, print_function

import difflib
import importlib
import os
import re

import yaml

from ansible_collections.gpunode.nvidia.plugins.filter.validate import STAGES

# Variables of other well-known collections and roles that share our prefixes
# (kubespray's and geerlingguy's containerd roles): never reported as typos.
FOREIGN_NAMES = frozenset((
    "containerd_additional_runtimes", "containerd_base_runtime_spec", "containerd_base_runtime_specs",
    "containerd_bin_dir", "containerd_cfg_dir", "containerd_config", "containerd_config_cgroup_driver_systemd",
    "containerd_config_default_write", "containerd_debug_address", "containerd_debug_format", "containerd_debug_level",
    "containerd_default_runtime", "containerd_discard_unpacked_layers", "containerd_enable_unprivileged_icmp",
    "containerd_enable_unprivileged_ports", "containerd_extra_args", "containerd_extra_runtime_args",
    "containerd_grpc_max_recv_message_size", "containerd_grpc_max_send_message_size", "containerd_insecure_registries",
    "containerd_max_container_log_line_size", "containerd_metrics_address", "containerd_metrics_grpc_histogram",
    "containerd_oom_score", "containerd_package", "containerd_package_state", "containerd_registries",
    "containerd_registries_mirrors", "containerd_registry_auth", "containerd_runc_runtime", "containerd_service_enabled",
    "containerd_service_state", "containerd_snapshotter", "containerd_state_dir", "containerd_storage_dir",
    "containerd_systemd_dir", "containerd_tracing_enabled", "containerd_use_config_path", "containerd_use_systemd_cgroup",
    "containerd_version",
))
FOREIGN_PREFIXES = ("containerd_limit_", "containerd_tracing_", "containerd_registries_", "containerd_debug_")

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DRIVER_VERSION = re.compile(r"^\d{3}(\.\d{1,3}){1,2}$")
BRANCH = re.compile(r"^\d{3}$")
CUDA_VERSION = re.compile(r"^\d{1,2}(\.\d{1,2})?$")
URL = re.compile(r"^(https?|file)://\S+$")
# A package version with its revision, as apt and dnf spell the toolkit's (1.20.0-1).
TOOLKIT_VERSION = re.compile(r"^\d+\.\d+\.\d+(~rc\.\d+)?-\d+$")
FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{40}$|^[0-9A-Fa-f]{64}$")
CDI_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*=[A-Za-z0-9_.:-]+$")


def load_roles(roles_dir):
    """{role: {"options": argument spec options of main, "defaults": raw defaults}} for every role there."""
    roles = {}
    for role in sorted(os.listdir(roles_dir)):
        spec_file = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
        if role.startswith("_") or not os.path.isfile(spec_file):
            continue
        with open(spec_file) as handle:
            specs = yaml.safe_load(handle) or {}
        defaults = {}
        defaults_file = os.path.join(roles_dir, role, "defaults", "main.yml")
        if os.path.isfile(defaults_file):
            with open(defaults_file) as handle:
                defaults = yaml.safe_load(handle) or {}
        role_vars = {}
        vars_file = os.path.join(roles_dir, role, "vars", "main.yml")
        if os.path.isfile(vars_file):
            with open(vars_file) as handle:
                role_vars = yaml.safe_load(handle) or {}
        options = ((specs.get("argument_specs") or {}).get("main") or {}).get("options") or {}
        roles[role] = {"options": options, "defaults": defaults, "vars": role_vars}
    return roles


def owner(name, roles):
    """The role whose prefix the variable carries (the longest prefix wins), or None."""
    best = None
    for role in roles:
        if name.startswith(role + "_") and (best is None or len(role) > len(best)):
            best = role
    return best


def unknown_variables(names, roles):
    """[(name, nearest known name or None)] for names with a role's prefix that no role defines."""
    known = set()
    for data in roles.values():
        known.update(data["options"])
    found = []
    for name in sorted(set(names)):
        role = owner(name, roles)
        if role is None or name in known or name in FOREIGN_NAMES or name.startswith(FOREIGN_PREFIXES):
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        found.append((name, near[0] if near else None))
    return found


def unknown_warning(name, near):
    text = "%s is not a variable of any gpunode.nvidia role (it is ignored)" % name
    return text + ("; did you mean %s?" % near if near else "")


def _int(value):
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _at_least(name, value, low, meaning=""):
    number = _int(value)
    if number is not None and number < low:
        return "%s is %s, below %d%s" % (name, value, low, meaning)
    return None


def _pattern(name, value, regex, what):
    if value in (None, "") or regex.match(str(value)):
        return None
    return "%s is %r, not %s" % (name, value, what)


def _regex(name, value):
    if not value:
        return None
    try:
        re.compile(value)
    except (re.error, TypeError) as exc:
        return "%s is not a valid regular expression (%s): %r" % (name, exc, value)
    return None


def _stage_names(name, value):
    unknown = sorted(str(k) for k in (value or {}) if k not in STAGES) if isinstance(value, dict) else []
    if unknown:
        return "%s names %s, not a validate stage (the stages: %s)" % (name, ", ".join(unknown), ", ".join(STAGES))
    return None


def _device_indexes(name, value):
    bad = [v for v in (value or []) if _int(v) is None or _int(v) < 0] if isinstance(value, list) else [value]
    if bad:
        return "%s has %s: CUDA device indexes are integers from 0" % (name, ", ".join(repr(v) for v in bad))
    return None


def _cdi_devices(name, value):
    bad = [v for v in (value or []) if not CDI_DEVICE.match(str(v))] if isinstance(value, list) else [value]
    if bad:
        return "%s has %s: a CDI device is vendor/class=name, such as nvidia.com/gpu=all" % (name, ", ".join(repr(v) for v in bad))
    return None


LABEL_SELECTOR = re.compile(r"^!?[A-Za-z0-9][A-Za-z0-9_./-]*((!=|==|=)[A-Za-z0-9_.-]*)?$")


def _label_selectors(name, value):
    bad = [s for s in value or [] if not isinstance(s, str) or not LABEL_SELECTOR.match(s)]
    return ("%s has %s: each is one label selector term, such as nvidia.com/gpu.workload=true or app!=web"
            % (name, ", ".join(repr(s) for s in bad))) if bad else None


def namespace_problem(name, value):
    if isinstance(value, str) and DNS_LABEL.match(value):
        return None
    return ("%s is %r: a namespace is a DNS-1123 label (lower-case letters, digits and '-', at most 63, starting and"
            " ending with a letter or digit), such as nvidia-gpu" % (name, value))


# One check a variable, for what argument specs cannot say. Each returns a problem or None.
CHECKS = {
    "preflight_min_gpus": lambda n, v: _at_least(n, v, 0),
    "driver_branch": lambda n, v: _pattern(n, v, BRANCH, "a driver branch such as 580"),
    "driver_version": lambda n, v: _pattern(n, v, DRIVER_VERSION, "a driver version such as 580.95.05"),
    "driver_reboot_timeout": lambda n, v: _at_least(n, v, 1),
    "driver_cuda_repo_url": lambda n, v: _pattern(n, v, URL, "an http(s):// or file:// URL"),
    "driver_mirror_url": lambda n, v: _pattern(n, v, URL, "an http(s):// or file:// URL"),
    "driver_mirror_key_url": lambda n, v: _pattern(n, v, URL, "an http(s):// or file:// URL"),
    "containerd_runtime_name": lambda n, v: (
        None if isinstance(v, str) and DNS_LABEL.match(v) else
        "%s is %r: a RuntimeClass handler must be a DNS-1123 label (lower-case letters, digits and '-',"
        " at most 63, starting and ending with a letter or digit), such as nvidia" % (n, v)),
    "container_toolkit_version": lambda n, v: _pattern(
        n, v, TOOLKIT_VERSION, "one exact version with its revision, as the packages spell it, such as 1.20.0-1"),
    "container_toolkit_mirror_url": lambda n, v: _pattern(n, v, URL, "an http(s):// or file:// URL"),
    "container_toolkit_mirror_key_url": lambda n, v: _pattern(n, v, URL, "an http(s):// or file:// URL"),
    "container_toolkit_key_fingerprint": lambda n, v: _pattern(
        n, str(v).replace(" ", "") if v else v, FINGERPRINT, "a key fingerprint of 40 (or 64) hex digits"),
    "containerd_cdi_enabled": lambda n, v: (
        None if v in (True, False) or str(v).lower() in ("auto", "true", "false", "yes", "no") else
        "%s is %r: true, false or auto" % (n, v)),
    "validate_gpu_count": lambda n, v: _at_least(n, v, -1, " (-1 means every GPU preflight found)"),
    "validate_product_pattern": _regex,
    "validate_driver_version": lambda n, v: _pattern(n, v, DRIVER_VERSION, "a driver version such as 580.95.05"),
    "validate_driver_branch": lambda n, v: _pattern(n, v, BRANCH, "a driver branch such as 580"),
    "validate_min_cuda_version": lambda n, v: _pattern(n, v, CUDA_VERSION, "a CUDA version such as 12.4"),
    "validate_plugin_min_gpus": lambda n, v: _at_least(n, v, 0),
    "validate_container_timeout": lambda n, v: _at_least(n, v, 1),
    "validate_skip": _stage_names,
    "validate_cuda_devices": _device_indexes,
    "validate_cuda_cdi_devices": _cdi_devices,
    "validate_cuda_timeout": lambda n, v: _at_least(n, v, 1),
    "gpu_cluster_namespace": namespace_problem,
    # The drain runs on the controller: its kubeconfig must be there before any node is touched.
    "rollout_kubeconfig": lambda n, v: (
        None if not v or os.path.isfile(os.path.expanduser(str(v))) else
        "%s is %r, which does not exist on the controller: the kubeconfig the drain uses is read there" % (n, v)),
    "rollout_pod_selectors": _label_selectors,
    "rollout_grace_period": lambda n, v: _at_least(n, v, 0, " (0 means each pod's own grace period)"),
    "rollout_drain_timeout": lambda n, v: _at_least(n, v, 1),
    "rollout_drain_retries": lambda n, v: _at_least(n, v, 0),
    "rollout_drain_delay": lambda n, v: _at_least(n, v, 0),
}


def _conflicts(values):
    problems = []
    if values.get("containerd_runtime_default") is True and values.get("containerd_runtime_state") == "absent":
        problems.append(
            "containerd_runtime_default is true and containerd_runtime_state is absent: removing the runtime cannot"
            " make it the default; set one of them")
    # Wheels mean pip reads no index: nvidia-ml-py's alone leaves cuda-bindings unfindable, and the reverse.
    if values.get("driver_nvml_install", "venv") == "venv" and values.get("driver_cuda_bindings_package", "auto") != "none":
        given = [n for n in ("driver_nvml_wheel", "driver_cuda_bindings_wheels") if values.get(n)]
        if len(given) == 1:
            problems.append(
                "%s is set but %s is not: with wheels pip reads no index, so give both (cuda_bindings and cuda_pathfinder"
                " wheels in driver_cuda_bindings_wheels), or set driver_cuda_bindings_package: none"
                % (given[0], ({"driver_nvml_wheel", "driver_cuda_bindings_wheels"} - set(given)).pop()))
    if values.get("container_toolkit_source") == "mirror":
        missing = [n for n in ("container_toolkit_mirror_url", "container_toolkit_mirror_key_url") if not values.get(n)]
        if missing:
            problems.append(
                "container_toolkit_source is mirror but %s %s empty: a mirror needs its URL and the URL of the key it is"
                " signed with (never an unverified repository)" % (" and ".join(missing), "is" if len(missing) == 1 else "are"))
    return problems


def problems(values):
    """Problems of the given variable values (name -> value, already templated), one line each."""
    found = []
    for name in sorted(values):
        check = CHECKS.get(name)
        if check is not None:
            problem = check(name, values[name])
            if problem:
                found.append(problem)
    return found + _conflicts(values)


def refusal(problems_found):
    """The one message a refused run prints first."""
    return "gpunode.nvidia refused its variables before any change: " + "; ".join(problems_found)


# The Kubernetes roles' builders (plugins/plugin_utils/k8s_<role>.py) know their own refusals; run
# here, before gpu_cluster applies or renders anything, with a cluster that cannot refuse (CDI and
# MIG as if present): what depends on the cluster is checked again by each role's preflight.
K8S_ROLES = ("device_plugin", "gpu_feature_discovery", "dcgm_exporter")
PERMISSIVE_CLUSTER = {
    "namespace": "nvidia-gpu", "registry": "", "image_pull_secrets": [], "runtime_class": "nvidia",
    "runtime_class_handler": "nvidia", "use_runtime_class": True, "tolerations": [], "priority_class": "",
    "node_selection": "either", "max_unavailable": 1, "labels": {}, "cdi_enabled": True, "mig_enabled": True,
    "mode": "render", "nodes": {},
}


_VAR_REFERENCE = re.compile(r"^\{\{\s*(_\w+)\s*\}\}$")


def _plain_default(value, role_vars):
    """A default that only names one of the role's vars (its data, e.g. the default counters) is that data."""
    match = _VAR_REFERENCE.match(value) if isinstance(value, str) else None
    return role_vars.get(match.group(1), value) if match else value


def k8s_problems(values, roles):
    """The Kubernetes roles' own refusals of the variables given (defaults filled in), one line each."""
    found = []
    for role in K8S_ROLES:
        prefix = role + "_"
        if role not in roles or not any(name.startswith(prefix) for name in values):
            continue
        settings = dict((name[len(prefix):], _plain_default(value, roles[role].get("vars") or {}))
                        for name, value in roles[role]["defaults"].items())
        settings.update((name[len(prefix):], value) for name, value in values.items() if name.startswith(prefix))
        builder = importlib.import_module("ansible_collections.gpunode.nvidia.plugins.plugin_utils.k8s_" + role)
        for problem in builder.problems(settings, dict(PERMISSIVE_CLUSTER)):
            if problem not in found:
                found.append(problem)
    return found
