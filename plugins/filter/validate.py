# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judgement for the validate role: each stage's verdict from what its tasks registered.

The role's tasks only probe (nvml_check, ctr, containerd_runtime in check mode,
k8s_info) and register; these filters turn the registered results into one
stage result each, ``{"stage", "status", "reason", "details"}`` with status
pass, fail, skip (by the user, or not applicable) or blocked (an earlier stage
did not pass), then into the node's report and the run's table. Kept here, in
Python, so every verdict is unit-tested.

The probes run with ``failed_when: false`` (a verdict, not a task error, is
what a failed probe means here), which leaves ``failed`` false on every
result: success is read from what only a successful run returns instead
(``passed`` from nvml_check, ``diff`` from containerd_runtime in check mode,
``resources`` from k8s_info, ``rc`` from commands).
"""

from __future__ import absolute_import, division, print_function

import re

from ansible_collections.gpunode.nvidia.plugins.plugin_utils.published import first_fact

STAGES = ("driver", "toolkit", "container", "cuda", "plugin")
NO_GPU = "no NVIDIA GPU on the PCI bus"
_GPU_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$")
_VERSION = re.compile(r"version (\S+)")


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _stage(stage, status, reason, details=None):
    return {"stage": stage, "status": status, "reason": reason, "details": details or {}}


def _last_line(*texts):
    for text in texts:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return ""


def _command_missing(result):
    """A command task whose binary does not exist (ansible-core reports rc 2 and no output)."""
    msg = result.get("msg") or ""
    return result.get("rc") == 2 and ("No such file" in msg or (msg == "Error executing command." and not result.get("stderr")))


def _failure_text(result):
    """What a failed task said, shortest useful form first."""
    return _last_line(result.get("stderr"), result.get("msg"), result.get("module_stderr"), result.get("stdout")) or "failed without a message"


def validate_gate(stages, stage, skip=None, continue_after_failure=False):
    """Why ``stage`` must not run (a skip or blocked stage result), or ``{}`` when it runs.

    Not None: before ansible-core 2.19 a template that yields None gives the string "None".
    """
    skip = skip or {}
    if stage not in STAGES:
        raise ValueError("unknown validate stage %r (stages: %s)" % (stage, ", ".join(STAGES)))
    if stage in skip:
        return _stage(stage, "skip", "skipped by validate_skip: %s" % (skip[stage] or "no reason given"))
    earlier = [stages[s] for s in STAGES[: STAGES.index(stage)] if s in (stages or {})]
    broken = [s["stage"] for s in earlier if s["status"] in ("fail", "blocked")]
    if broken and not continue_after_failure:
        return _stage(stage, "blocked", "blocked: the %s stage did not pass" % broken[0])
    return {}


def validate_driver_stage(result, preflight, expected=None):
    """The driver stage from nvml_check's registered result and the gpunode_preflight fact.

    ``expected``: what nvml_check was asked to check (empty values: not checked), kept in the report.
    """
    gpus_on_pci = ((preflight or {}).get("gpus") or {}).get("count")
    info = result.get("nvml") or {}
    details = {
        "expected": dict((k, v) for k, v in (expected or {}).items() if v not in (None, "")),
        "gpus_on_pci": gpus_on_pci,
        "driver_version": info.get("driver_version"),
        "cuda_driver_version": info.get("cuda_driver_version"),
        "gpu_count": info.get("gpu_count"),
        "gpus": [dict([(k, g.get(k)) for k in ("index", "name", "uuid", "pci_bus_id")] + [("mig_enabled", bool((g.get("mig") or {}).get("current")))])
                 for g in info.get("gpus") or []],
        "nvml_error": result.get("nvml_error"),
        "checks": result.get("checks") or [],
    }
    if not result.get("failed") and result.get("passed"):
        names = sorted(set(g["name"] for g in details["gpus"] if g.get("name")))
        reason = "driver %s, CUDA %s, %s GPU(s) %s; %s" % (
            details["driver_version"], details["cuda_driver_version"], details["gpu_count"], " / ".join(names), result.get("summary"))
        return _stage("driver", "pass", reason, details)
    reason = result.get("summary") or _failure_text(result)
    if gpus_on_pci == 0 and NO_GPU not in reason:
        reason = "%s; %s" % (NO_GPU, reason)
    return _stage("driver", "fail", reason, details)


def _version_of(probe):
    if probe.get("rc") != 0:
        return None
    match = _VERSION.search((probe.get("stdout") or "").splitlines()[0] if probe.get("stdout") else "")
    return match.group(1) if match else None


def _would_change(result):
    """Whether containerd_runtime, run in check mode with diff, would change something; None when it could not tell.

    The task runs with changed_when false, so that a validation never reports
    a change of its own; the module returns a diff only when it would change
    something, and its result keys (config_path, imports) only when it ran.
    """
    if result.get("failed") or "msg" in result:
        return None
    diff = result.get("diff")
    if diff:
        diffs = diff if isinstance(diff, list) else [diff]
        if any(d.get("before") != d.get("after") for d in diffs if isinstance(d, dict)):
            return True
    if "config_path" in result and "imports" in result:
        return False
    return None


def _from_containerd_fact(containerd, problems):
    """(configured, details) from the gpunode_containerd fact the containerd role published."""
    runtime = containerd.get("runtime") or {}
    name = runtime.get("name") or "nvidia"
    configured = None
    if not containerd.get("checked"):
        problems.append("containerd's configuration was not read in this run (check mode with changes pending): run the containerd role")
    elif runtime.get("state") != "present" or not runtime.get("options"):
        configured = False
        problems.append("containerd config dump has no %s runtime: run the containerd role with containerd_runtime_state: present" % name)
    else:
        configured = not containerd.get("problems")
        problems.extend(containerd.get("problems") or [])
    details = {
        "containerd_runtime_configured": configured,
        "containerd_version": containerd.get("version"),
        "containerd_config": containerd.get("config_path"),
        "effective_runtime": {"runtime_type": runtime.get("runtime_type"), "options": runtime.get("options")} if configured else None,
    }
    return name, details


def _from_runtime_check(check, problems):
    """(name, details) from containerd_runtime run in check mode with diff (no containerd fact)."""
    configured = None
    name = ((check.get("invocation") or {}).get("module_args") or {}).get("name") or "nvidia"
    if not check.get("skipped"):
        would_change = _would_change(check)
        if would_change is None:
            problems.append("could not tell whether containerd has the %s runtime (containerd_runtime: %s)" % (name, _failure_text(check)))
        else:
            configured = not would_change
            if would_change:
                problems.append("the %s runtime is not configured in containerd as the containerd role sets it (%s): run the containerd role"
                                % (name, ", ".join(d.get("after_header", "?") for d in _as_list(check.get("diff")))))
    details = {
        "containerd_runtime_configured": configured,
        "containerd_version": check.get("containerd_version"),
        "containerd_config": check.get("config_path"),
        # What `containerd config dump` shows for the runtime (read when nothing is pending).
        "effective_runtime": (check.get("effective") or {}).get("runtime"),
    }
    return name, details


def _toolkit_packages(packages, expected_version, problems):
    """Checks the toolkit's packages (toolkit_state's read, or the container_toolkit fact's).

    ``packages``: {packages: {name: version}, binaries: {path: exists}}. Every
    package installed, all at one version (``expected_version`` when given),
    every binary the packages provide present.
    """
    versions = packages.get("packages") or {}
    details = {"packages": versions, "expected_version": expected_version or None}
    missing = sorted(n for n, v in versions.items() if not v)
    if missing:
        problems.append("toolkit packages not installed: %s (the container_toolkit role installs them)" % ", ".join(missing))
    found = sorted(set(v for v in versions.values() if v))
    if expected_version and found and found != [expected_version]:
        problems.append("toolkit packages are not all at %s: %s" % (
            expected_version, ", ".join("%s %s" % (n, v) for n, v in sorted(versions.items()) if v and v != expected_version)))
    elif len(found) > 1:
        problems.append("toolkit packages are at different versions (%s): they must move together" % ", ".join(
            "%s %s" % (n, v) for n, v in sorted(versions.items()) if v))
    absent = sorted(path for path, exists in (packages.get("binaries") or {}).items() if not exists)
    if absent and not missing:
        problems.append("binaries the toolkit packages provide are missing: %s" % ", ".join(absent))
    return details


def validate_toolkit_stage(probes, runtime_check, containerd=None, packages=None, expected_version=""):
    """The toolkit stage.

    ``probes``: the registered loop of ``<binary> --version`` over the runtime
    and nvidia-ctk; ``containerd``: the gpunode_containerd fact where the
    containerd role ran, else ``runtime_check``: containerd_runtime run in
    check mode with diff (no difference means the runtime is configured).
    ``packages``: the toolkit's packages and binaries (see _toolkit_packages),
    or empty where they were not read.
    """
    binaries, problems = {}, []
    for probe in (probes or {}).get("results") or []:
        path = probe.get("item")
        version = _version_of(probe)
        binaries[path] = version
        if version is None:
            missing = _command_missing(probe)
            problems.append("%s %s" % (path, "is not installed (install the NVIDIA container toolkit: container_toolkit role)" if missing
                                       else "does not work: %s" % _failure_text(probe)))
    if containerd:
        name, details = _from_containerd_fact(containerd, problems)
    else:
        name, details = _from_runtime_check(runtime_check or {}, problems)
    details["binaries"] = binaries
    if packages:
        details["toolkit"] = _toolkit_packages(packages, expected_version, problems)
    if problems:
        return _stage("toolkit", "fail", "; ".join(problems), details)
    versions = ", ".join("%s %s" % (path.rsplit("/", 1)[-1], version) for path, version in sorted(binaries.items()))
    if packages:
        found = sorted(set((packages.get("packages") or {}).values()))
        versions += " (%d packages at %s)" % (len(packages.get("packages") or {}), ", ".join(found))
    return _stage("toolkit", "pass", "%s; the %s runtime is configured in containerd %s%s" % (
        versions, name, details["containerd_version"] or "", " (confirmed by its config dump)" if details["effective_runtime"] else ""), details)


def validate_container_stage(steps, image, expected_gpus, check_mode=False):
    """The container stage from its registered steps.

    ``steps``: ``probe`` (ctr images ls), ``import`` (ctr images import of the
    tarball), ``pull`` and ``run`` (ctr run of nvidia-smi -L through the
    runtime); each may be skipped. ``expected_gpus``: what NVML saw on the host.
    """
    probe, imported, pulled, run = (steps.get(k) or {} for k in ("probe", "import", "pull", "run"))
    details = {"image": image, "expected_gpus": expected_gpus}
    if _command_missing(probe):
        return _stage("container", "fail", "ctr is not installed: install containerd (the containerd role)", details)
    if probe.get("rc") != 0:
        return _stage("container", "fail", "containerd does not answer (is it running?): %s" % _failure_text(probe), details)
    if imported and not imported.get("skipped") and imported.get("rc", 0) != 0:
        return _stage("container", "fail", "importing the image tarball failed: %s" % _failure_text(imported), details)
    if pulled and not pulled.get("skipped") and pulled.get("rc", 0) != 0:
        return _stage("container", "fail", "image %s is not on the node and could not be pulled (%s): for an air-gapped site set"
                      " validate_container_image_archive to a tarball of it" % (image, _failure_text(pulled)), details)
    if run.get("skipped"):
        if check_mode:
            return _stage("container", "skip", "check mode: image %s is not on the node and was not pulled" % image, details)
        return _stage("container", "skip", "the container was not run", details)
    if run.get("rc") != 0:
        text = _failure_text(run)
        hint = ""
        if "nvidia-smi" in text and ("not found" in text or "no such file" in text.lower()):
            hint = ": the runtime did not inject the driver's nvidia-smi (is the runtime the NVIDIA one, and the image glibc-based?)"
        return _stage("container", "fail", "the container could not run nvidia-smi: %s%s" % (text, hint), details)
    seen = []
    for line in (run.get("stdout") or "").splitlines():
        match = _GPU_LINE.match(line.strip())
        if match:
            seen.append({"index": int(match.group(1)), "name": match.group(2), "uuid": match.group(3)})
    details["gpus"] = seen
    if not seen:
        return _stage("container", "fail", "nvidia-smi ran in the container but listed no GPU", details)
    if expected_gpus is not None and len(seen) != expected_gpus:
        return _stage("container", "fail", "the container sees %d GPU(s), the host %d" % (len(seen), expected_gpus), details)
    return _stage("container", "pass", "a container through the runtime sees %d GPU(s): %s" % (len(seen), seen[0]["name"]), details)


def _cuda_gpus(run):
    keys = ("index", "name", "uuid", "compute_capability", "passed", "error", "elapsed_s", "jit_s", "kernel_s")
    return [dict((k, d.get(k)) for k in keys) for d in (run or {}).get("devices") or []]


def validate_cuda_expected_gpus(stages, fallback):
    """GPUs the cuda stage must see: what NVML saw, else ``fallback`` (the PCI count); -1 (not checked) where MIG is on,
    since a CUDA process sees one MIG device."""
    driver = ((stages or {}).get("driver") or {}).get("details") or {}
    if any(g.get("mig_enabled") for g in driver.get("gpus") or []):
        return -1
    count = driver.get("gpu_count")
    return count if count is not None else (fallback if fallback is not None else -1)


def validate_cuda_stage(result, image=None, check_mode=False, bindings_skipped=None):
    """The cuda stage from cuda_workload's registered result and, where the runtime part was asked for,
    cuda_workload_image's (skipped when it was not).

    In check mode an image not yet imported is not imported, so the runtime part did not run: said so, not failed.
    ``bindings_skipped``: why the driver role installed no cuda-bindings (gpunode_driver.cuda_bindings_skipped), said
    instead of the generic install hint.
    """
    image = image or {}
    details = {"cuda_driver_version": result.get("cuda_driver_version"), "checks": result.get("checks") or [],
               "host": _cuda_gpus(result.get("host")), "image": image.get("image")}
    container = result.get("container")
    if container is not None:
        details["container"] = {"gpus": _cuda_gpus(container), "libcuda": container.get("libcuda"), "error": container.get("error")}
    problems = []
    # A failed run is told by its msg (failed_when: false clears "failed"); a skipped one was not asked for.
    if image and not image.get("skipped") and ("msg" in image or "image" not in image):
        problems.append("the CUDA workload image could not be made, so the runtime part did not run: %s" % _failure_text(image))
    if bindings_skipped and ((result.get("host") or {}).get("error") == "BINDING_MISSING" or "cuda-bindings" in (image.get("msg") or "")):
        problems.append("the driver role installed no cuda-bindings (%s): install cuda-bindings in a Python 3.9 or later and name it in"
                        " validate_nvml_python, or skip the stage (validate_skip: {cuda: <reason>})" % bindings_skipped)
    elif "checks" not in result:
        problems.append(_failure_text(result))
    elif not result.get("passed"):
        problems.append(result.get("summary") or _failure_text(result))
    if problems:
        return _stage("cuda", "fail", "; ".join(problems), details)
    reason = result.get("summary")
    if check_mode and image.get("image") and not image.get("present") and container is None:
        reason += "; check mode: the workload image is not imported yet, so the runtime part did not run"
    return _stage("cuda", "pass", reason, details)


def validate_k8s_published(hostvars, hosts):
    """What the Kubernetes roles published on the first of ``hosts`` that ran them (None each where none did)."""
    return {"device_plugin": first_fact(hostvars, hosts, "gpunode_device_plugin"),
            "gpu_feature_discovery": first_fact(hostvars, hosts, "gpunode_gpu_feature_discovery"),
            "gpu_cluster": first_fact(hostvars, hosts, "gpunode_gpu_cluster")}


def validate_plugin_expected(published, node_name, gpu_count, resource="nvidia.com/gpu", minimum=1):
    """What node ``node_name`` must offer, from what the Kubernetes roles published in this run.

    ``published``: {"device_plugin": gpunode_device_plugin or None, "gpu_feature_discovery":
    gpunode_gpu_feature_discovery or None}. Without the device plugin's fact, the node must show
    ``minimum`` of ``resource`` (validate_plugin_resource/min_gpus). With it, the node's
    configuration (its nvidia.com/device-plugin.config label's, else the default) says the
    resource and how many: GPU count x replicas of time-slicing or MPS, exactly; with MIG, its
    MIG devices (at least one: how many instances a GPU is cut into is mig-parted's, not ours).
    """
    plugin = (published or {}).get("device_plugin") or {}
    gfd = (published or {}).get("gpu_feature_discovery") or {}
    expected = {"resource": resource, "minimum": minimum, "exact": None, "labels": list(gfd.get("labels") or []), "config": None}
    configs = plugin.get("configs") or {}
    if not configs:
        return expected
    name = (plugin.get("node_configs") or {}).get(node_name) or plugin.get("default_config")
    config = configs.get(name) or {}
    expected["config"] = name
    expected["resource"] = config.get("resource") or resource
    strategy = config.get("mig_strategy") or "none"
    expected["mig_strategy"] = strategy
    if strategy == "mixed":
        expected["resource"] = "nvidia.com/mig-*"
    elif strategy == "none" and gpu_count is not None and int(gpu_count) >= 0:
        expected.update(gpus=int(gpu_count), replicas=int(config.get("replicas") or 1))
        expected["exact"] = expected["gpus"] * expected["replicas"]
        expected["minimum"] = expected["exact"]
    return expected


def _resource_count(allocatable, resource):
    if resource.endswith("*"):
        return sum(_int_or_zero(v) for k, v in allocatable.items() if k.startswith(resource[:-1]))
    return _int_or_zero(allocatable.get(resource, 0))


def _int_or_zero(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _plugin_expected_stage(node, node_name, expected):
    """The plugin stage judged against what the device plugin and GFD roles published."""
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or {}
    resource = expected["resource"]
    count = _resource_count(allocatable, resource)
    details = {"node": node_name, "resource": resource, "config": expected.get("config"), "allocatable": count,
               "expected": expected.get("exact"), "minimum": expected["minimum"]}
    labels = (node.get("metadata") or {}).get("labels") or {}
    missing = [label for label in expected.get("labels") or [] if label not in labels]
    details["labels_missing"] = missing
    problems = []
    if expected.get("exact") is not None and count != expected["exact"]:
        problems.append("allocatable %s = %d, expected %d (%d GPUs x %d replicas of config %s): is the device plugin running"
                        " on this node, with that config?" % (resource, count, expected["exact"], expected["gpus"],
                                                              expected["replicas"], expected.get("config")))
    elif count < expected["minimum"]:
        problems.append("allocatable %s = %d, need at least %d (config %s, MIG strategy %s)" % (
            resource, count, expected["minimum"], expected.get("config"), expected.get("mig_strategy", "none")))
    if missing:
        problems.append("GPU Feature Discovery labels missing: %s (is NFD publishing nvidia.com labels, and GFD running"
                        " on this node?)" % ", ".join(missing))
    if problems:
        return _stage("plugin", "fail", "; ".join(problems), details)
    text = "allocatable %s = %d" % (resource, count)
    if expected.get("config"):
        text += " (config %s)" % expected["config"]
    if expected.get("labels"):
        text += ", %d GFD labels present" % len(expected["labels"])
    return _stage("plugin", "pass", text, details)


def validate_node_capacity(nodes_result, node_name, resource="nvidia.com/gpu", minimum=1, expected=None):
    """The plugin stage: does Kubernetes node ``node_name`` offer ``minimum`` of ``resource``?

    ``nodes_result``: kubernetes.core.k8s_info over kind Node. ``expected``: what
    validate_plugin_expected made of the Kubernetes roles' facts (exact counts, GFD labels).
    """
    details = {"node": node_name, "resource": resource, "minimum": minimum}
    if nodes_result.get("failed") or "resources" not in nodes_result:
        return _stage("plugin", "fail", "could not read the Kubernetes nodes: %s" % _failure_text(nodes_result), details)
    node = None
    for item in nodes_result.get("resources") or []:
        if (item.get("metadata") or {}).get("name") == node_name:
            node = item
            break
    if node is None:
        return _stage("plugin", "fail", "node %s is not in the cluster: set validate_k8s_node_name to its Kubernetes name" % node_name, details)
    if expected and (expected.get("config") or expected.get("labels")):
        return _plugin_expected_stage(node, node_name, expected)
    status = node.get("status") or {}
    capacity, allocatable = status.get("capacity") or {}, status.get("allocatable") or {}
    details["capacity"] = capacity.get(resource)
    details["allocatable"] = allocatable.get(resource)
    try:
        count = int(capacity.get(resource, 0))
    except (TypeError, ValueError):
        count = 0
    if count >= minimum:
        return _stage("plugin", "pass", "node capacity %s = %d (allocatable %s)" % (resource, count, details["allocatable"]), details)
    others = sorted(k for k in capacity if k.startswith("nvidia.com/") and k != resource)
    if others:
        details["other_resources"] = others
        return _stage("plugin", "fail", "node capacity has no %s but %s: the device plugin's MIG strategy is mixed; set"
                      " validate_plugin_resource" % (resource, ", ".join(others)), details)
    return _stage("plugin", "fail", "node capacity %s = %d, need %d: is the device plugin running on this node, with the nvidia runtime"
                  " (runtimeClass nvidia or nvidia as containerd's default runtime)?" % (resource, count, minimum), details)


def validate_report(stages, host, preflight, fail_without_gpu=False):
    """The node's report: stages in order, the node's result and whether it fails the play."""
    ordered = [stages[s] for s in STAGES if s in stages]
    statuses = [s["status"] for s in ordered]
    gpus_on_pci = ((preflight or {}).get("gpus") or {}).get("count")
    if any(s in ("fail", "blocked") for s in statuses):
        result = "no_gpu" if gpus_on_pci == 0 and not fail_without_gpu else "fail"
    elif "pass" in statuses:
        result = "pass"
    else:
        result = "skip"
    return {
        "host": host,
        "result": result,
        "fails_play": result == "fail",
        "gpus_on_pci": gpus_on_pci,
        "nvswitches_on_pci": ((preflight or {}).get("nvswitches") or {}).get("count"),
        "stages": ordered,
    }


RESULT_TEXT = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "no_gpu": "no GPU (not failed)"}


def validate_table(reports, hosts):
    """One table for the run: a line per host and, under it, why a stage failed or was skipped."""
    fmt = "%-28s %-9s %-9s %-9s %-9s %-9s %s"
    lines = [fmt % (("node",) + STAGES + ("result",))]
    for host in hosts:
        report = (reports or {}).get(host)
        if not report:
            lines.append(fmt % tuple([host] + ["-"] * len(STAGES) + ["not validated (failed earlier or unreachable)"]))
            continue
        by_stage = dict((s["stage"], s) for s in report["stages"])
        cells = [by_stage[s]["status"].upper() if s in by_stage else "-" for s in STAGES]
        lines.append(fmt % tuple([host] + cells + [RESULT_TEXT.get(report["result"], report["result"])]))
        for stage in report["stages"]:
            if stage["status"] in ("fail", "skip"):
                lines.append("    %s: %s" % (stage["stage"], stage["reason"]))
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "validate_gate": validate_gate,
            "validate_driver_stage": validate_driver_stage,
            "validate_toolkit_stage": validate_toolkit_stage,
            "validate_container_stage": validate_container_stage,
            "validate_cuda_stage": validate_cuda_stage,
            "validate_cuda_expected_gpus": validate_cuda_expected_gpus,
            "validate_node_capacity": validate_node_capacity,
            "validate_plugin_expected": validate_plugin_expected,
            "validate_k8s_published": validate_k8s_published,
            "validate_report": validate_report,
            "validate_table": validate_table,
        }
