#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: nvml_check
short_description: Check the NVIDIA driver and GPUs against declared expectations through NVML
version_added: "0.1.0"
description:
  - Reads the driver and every GPU through NVML (as M(gpunode.nvidia.nvml_info) does) and evaluates
    each expectation given, per GPU where it applies. Every check is reported with C(pass), C(fail) or
    C(not_supported); the module fails with one message that names every failed check.
  - Always checks that NVML starts and that every GPU can be read (a lost GPU fails here). The memory
    health checks (no pending row remap, no remap failure, no pending page retirement) and the fabric
    check on NVSwitch systems are on by default; the others run when their option is set.
  - A check whose feature the GPU does not support is C(not_supported), which passes, unless the
    expectation needs the feature (ECC on, MIG enabled, fabric required).
  - When NVML cannot start, the only check is C(nvml), failed with the reason and what to do.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
requirements:
  - nvidia-ml-py (C(import pynvml)) on the node, in any Python the module can reach
extends_documentation_fragment:
  - gpunode.nvidia.attributes.read_only
options:
  driver_version:
    description: Exact driver version expected, for example C(580.159.04).
    type: str
  driver_branch:
    description: Driver branch expected (the version's first field), for example C(580).
    type: str
  min_cuda_version:
    description: Lowest CUDA version the driver must support, C(major.minor), for example C(12.8).
    type: str
  gpu_count:
    description:
      - Number of GPUs NVML must see. Give the number on the PCI bus (C(gpunode_preflight.gpus.count))
        to catch a GPU the driver did not bring up.
    type: int
  product_pattern:
    description: Regular expression every GPU name must match (searched), for example C(H100|H200).
    type: str
  persistence_mode:
    description: Expected persistence mode of every GPU (true = on).
    type: bool
  mig_mode:
    description:
      - Expected MIG mode of every GPU. A pending change that differs from the current mode fails
        (the GPU needs a reset). C(disabled) passes on GPUs without MIG.
    type: str
    choices: [enabled, disabled]
  ecc:
    description: Expected ECC mode of every GPU (true = on). A pending change fails (it needs a reboot).
    type: bool
  row_remapping:
    description: Fail a GPU with a pending row remap (needs a reset) or a row remap failure (needs service).
    type: bool
    default: true
  retired_pages:
    description: Fail a GPU with a pending page retirement (needs a reboot); for GPUs before Ampere.
    type: bool
    default: true
  fabric:
    description:
      - GPU fabric registration must be C(completed) with success.
      - C(auto) checks it where NVSwitches are on the PCI bus or in C(/proc/driver/nvidia-nvswitch/devices);
        C(required) always (multi-node NVLink systems whose switches are not in the node); C(ignore) never.
    type: str
    choices: [auto, required, ignore]
    default: auto
  python_interpreters:
    description:
      - Python interpreters to try, in order, when the module's own Python cannot import C(pynvml);
        as in M(gpunode.nvidia.nvml_info).
    type: list
    elements: path
    default: []
notes:
  - Run it with become; NVML needs access to C(/dev/nvidia*).
seealso:
  - module: gpunode.nvidia.nvml_info
"""

EXAMPLES = r"""
- name: Check an HGX H100 node
  gpunode.nvidia.nvml_check:
    driver_branch: "580"
    min_cuda_version: "12.8"
    gpu_count: "{{ gpunode_preflight.gpus.count }}"
    product_pattern: "H100"
    persistence_mode: true
    mig_mode: disabled
    ecc: true
  become: true

- name: Collect the checks without failing the play
  gpunode.nvidia.nvml_check:
    ecc: true
  become: true
  register: gpu_checks
  failed_when: false
"""

RETURN = r"""
passed:
  description: Whether every check passed.
  returned: always
  type: bool
checks:
  description: Every check made, in order.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: The check's name (nvml, driver_version, driver_branch, min_cuda_version, gpu_count, readable,
        product_pattern, persistence_mode, mig_mode, ecc, row_remapping, retired_pages, fabric).
      type: str
    gpu:
      description: GPU index, or null for a node-wide check.
      type: int
    status:
      description: pass, fail or not_supported (not_supported passes).
      type: str
    expected:
      description: What was expected.
      type: raw
    actual:
      description: What NVML reported.
      type: raw
    message:
      description: What was seen and, for a failure, what to do.
      type: str
  sample:
    - {check: ecc, gpu: 0, status: fail, expected: true, actual: false, message: "ECC is off, expected on: ..."}
failed_checks:
  description: C(<gpuN >check) of every failed check.
  returned: always
  type: list
  elements: str
  sample: ["gpu0 ecc", "gpu_count"]
summary:
  description: One line saying how many checks ran and which failed.
  returned: always
  type: str
nvml:
  description: What NVML reported (the return of M(gpunode.nvidia.nvml_info)); empty when NVML could not start.
  returned: always
  type: dict
nvml_error:
  description: >-
    The NVML error's name when NVML could not start (for example C(DRIVER_NOT_LOADED)), or
    C(BINDING_MISSING) when no Python on the node has nvidia-ml-py.
  returned: when NVML could not start
  type: str
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload, nvml, sysfs

# The node's filesystem root (NVSwitches, diagnosis of NVML errors); tests point it at a host tree.
ROOT = "/"


def _check(name, passed, expected, actual, message, *, gpu=None, status=None):
    return {
        "check": name,
        "gpu": gpu,
        "status": status or ("pass" if passed else "fail"),
        "expected": expected,
        "actual": actual,
        "message": message,
    }


def _on(value):
    return "on" if value else "off"


def _unless(ok, advice):
    """The advice for a failed check, nothing for a passed one."""
    return "" if ok else ": " + advice


# ----------------------------------------------------------- node checks


def check_driver_version(info, want):
    version = info.get("driver_version")
    ok = version == want
    return _check("driver_version", ok, want, version, "driver %s, expected %s%s" % (version, want, _unless(ok, "install the pinned version")))


def check_driver_branch(info, want):
    version = info.get("driver_version")
    branch = (version or "").split(".")[0]
    ok = branch == want
    message = "driver %s is branch %s, expected %s%s" % (version, branch, want, _unless(ok, "install the branch asked for"))
    return _check("driver_branch", ok, want, branch, message)


def check_min_cuda(info, want):
    cuda = info.get("cuda_driver_version")
    if cuda is None:
        return _check("min_cuda_version", False, want, None, "NVML does not report the driver's CUDA version (driver too old)")
    problem = workload.cuda_version_problem(cuda, want)
    message = problem or "driver supports CUDA %s, need at least %s" % (cuda, want)
    return _check("min_cuda_version", problem is None, want, cuda, message)


def check_gpu_count(info, want):
    count = info.get("gpu_count")
    ok = count == want
    return _check("gpu_count", ok, want, count, "NVML sees %s GPU(s), expected %s%s" % (
        count, want, _unless(ok, "a GPU the driver did not bring up (dmesg: Xid, NVRM) or a wrong expectation")))


def node_checks(info, params):
    """Checks about the driver and the whole node, for the options set."""
    checks = []
    if params.get("driver_version"):
        checks.append(check_driver_version(info, params["driver_version"]))
    if params.get("driver_branch"):
        checks.append(check_driver_branch(info, str(params["driver_branch"])))
    if params.get("min_cuda_version"):
        checks.append(check_min_cuda(info, params["min_cuda_version"]))
    if params.get("gpu_count") is not None:
        checks.append(check_gpu_count(info, params["gpu_count"]))
    return checks


# ------------------------------------------------------------ GPU checks


def check_readable(gpu):
    errors = gpu.get("errors") or {}
    if errors:
        return _check("readable", False, True, False, "; ".join("%s: %s" % item for item in sorted(errors.items())), gpu=gpu["index"])
    unsupported = gpu.get("not_supported") or []
    message = "every field read" + (" (not supported: %s)" % ", ".join(unsupported) if unsupported else "")
    return _check("readable", True, True, True, message, gpu=gpu["index"])


def check_product(gpu, pattern):
    name = gpu.get("name") or ""
    ok = re.search(pattern, name) is not None
    return _check("product_pattern", ok, pattern, name, "%s %s /%s/" % (name, "matches" if ok else "does not match", pattern), gpu=gpu["index"])


def check_persistence(gpu, want):
    actual = gpu.get("persistence_mode")
    ok = actual == want
    return _check("persistence_mode", ok, want, actual, "persistence mode is %s, expected %s%s" % (
        _on(actual), _on(want), _unless(ok, "enable nvidia-persistenced (the driver role does)")), gpu=gpu["index"])


def check_mode(name, gpu, field, want, *, label, pending_fix):
    """ECC and MIG: the current mode must match and no different mode may be pending."""
    index = gpu["index"]
    state = gpu.get(field)
    if state is None:
        if want:
            return _check(name, False, want, None, "%s is not supported on this GPU, expected %s" % (label, _on(want)), gpu=index)
        return _check(name, True, want, None, "%s is not supported on this GPU (so it is off)" % label, gpu=index, status="not_supported")
    current, pending = state["current"], state["pending"]
    if current != want:
        hint = " (a change to %s is pending: %s)" % (_on(pending), pending_fix) if pending == want else ""
        return _check(name, False, want, current, "%s is %s, expected %s%s" % (label, _on(current), _on(want), hint), gpu=index)
    if pending != current:
        return _check(name, False, want, current, "%s is %s but %s is pending: %s" % (label, _on(current), _on(pending), pending_fix), gpu=index)
    return _check(name, True, want, current, "%s is %s" % (label, _on(current)), gpu=index)


def check_row_remapping(gpu):
    index, rows, want = gpu["index"], gpu.get("remapped_rows"), "no pending remap, no failure"
    if rows is None:
        return _check("row_remapping", True, want, None, "row remapping not supported (before Ampere)", gpu=index, status="not_supported")
    if rows["failure"]:
        return _check("row_remapping", False, want, rows, "row remapping FAILED (%s uncorrectable rows): the GPU is out of spare rows"
                      " and needs service" % rows["uncorrectable"], gpu=index)
    if rows["pending"]:
        return _check("row_remapping", False, want, rows, "a row remap is pending: reset the GPU (nvidia-smi -r) with no process on it,"
                      " or reboot", gpu=index)
    return _check("row_remapping", True, want, rows, "no pending remap (%s correctable, %s uncorrectable remapped)"
                  % (rows["correctable"], rows["uncorrectable"]), gpu=index)


def check_retired_pages(gpu):
    index, pages, want = gpu["index"], gpu.get("retired_pages"), "no pending retirement"
    if pages is None:
        return _check("retired_pages", True, want, None, "page retirement not supported (Ampere and later remap rows)", gpu=index,
                      status="not_supported")
    if pages["pending"]:
        return _check("retired_pages", False, want, pages, "a page retirement is pending: reboot the node to retire the page(s)", gpu=index)
    return _check("retired_pages", True, want, pages, "no pending retirement (%s single-bit, %s double-bit retired)"
                  % (pages["single_bit_ecc"], pages["double_bit_ecc"]), gpu=index)


def check_fabric(gpu, required):
    index, fabric, want = gpu["index"], gpu.get("fabric"), "completed"
    if fabric is None:
        return _check("fabric", not required, want, None, "GPU fabric state not supported on this GPU", gpu=index,
                      status=None if required else "not_supported")
    if fabric["state"] != "completed":
        return _check("fabric", False, want, fabric["state"], "GPU fabric registration is %s: start nvidia-fabricmanager (the exact"
                      " driver version) and check its log" % fabric["state"], gpu=index)
    if fabric["status"] != "SUCCESS":
        return _check("fabric", False, want, fabric["status"], "GPU fabric registration completed with error %s: check the"
                      " nvidia-fabricmanager log and NVSwitch health" % fabric["status"], gpu=index)
    return _check("fabric", True, want, fabric["state"], "GPU fabric registration completed (clique %s)" % fabric.get("clique_id"), gpu=index)


def gpu_checks(gpu, params, fabric_expected):
    """Checks about one GPU, for the options set."""
    checks = [check_readable(gpu)]
    if params.get("product_pattern"):
        checks.append(check_product(gpu, params["product_pattern"]))
    if params.get("persistence_mode") is not None:
        checks.append(check_persistence(gpu, params["persistence_mode"]))
    if params.get("mig_mode"):
        checks.append(check_mode("mig_mode", gpu, "mig", params["mig_mode"] == "enabled", label="MIG mode",
                                 pending_fix="reset the GPU (nvidia-smi -r) with no process on it, or reboot"))
    if params.get("ecc") is not None:
        checks.append(check_mode("ecc", gpu, "ecc", params["ecc"], label="ECC", pending_fix="reboot the node to apply it"))
    if params.get("row_remapping"):
        checks.append(check_row_remapping(gpu))
    if params.get("retired_pages"):
        checks.append(check_retired_pages(gpu))
    if fabric_expected:
        checks.append(check_fabric(gpu, params.get("fabric") == "required"))
    return checks


def evaluate(info, params, nvswitches):
    """Every check for the NVML read ``info``; ``nvswitches``: NVSwitches found on the node."""
    fabric_expected = params.get("fabric") == "required" or (params.get("fabric") == "auto" and nvswitches > 0)
    started = "NVML started; driver %s, CUDA %s" % (info.get("driver_version"), info.get("cuda_driver_version"))
    checks = [_check("nvml", True, "NVML starts", "driver %s" % info.get("driver_version"), started)]
    checks.extend(node_checks(info, params))
    for gpu in info.get("gpus") or []:
        checks.extend(gpu_checks(gpu, params, fabric_expected))
    return checks


def _label(check):
    return ("gpu%s %s" % (check["gpu"], check["check"])) if check["gpu"] is not None else check["check"]


def summarize(checks):
    failed = [c for c in checks if c["status"] == "fail"]
    if not failed:
        return [], "all %d checks passed" % len(checks)
    return [_label(c) for c in failed], "%d of %d checks failed: %s" % (
        len(failed), len(checks), "; ".join("%s: %s" % (_label(c), c["message"]) for c in failed))


def count_nvswitches(root="/"):
    _gpus, switches = sysfs.nvidia_pci(root)
    return max(len(switches), len(sysfs.nvswitch_procfs_devices(root)))


def failure_result(name, message):
    """fail_json arguments when NVML cannot be used at all: one failed check, ``nvml``."""
    checks = [_check("nvml", False, "NVML starts", name, message)]
    failed, summary = summarize(checks)
    return dict(msg=summary, passed=False, checks=checks, failed_checks=failed, summary=summary, nvml={}, nvml_error=name)


def run(module, root):
    params = module.params
    lib = nvml.load_pynvml(module, params["python_interpreters"], failure_result)
    try:
        info = nvml.read_all(lib, root)
    except nvml.NvmlFailure as failure:
        module.fail_json(**failure_result(failure.name, failure.message))
    checks = evaluate(info, params, count_nvswitches(root))
    failed, summary = summarize(checks)
    result = dict(changed=False, passed=not failed, checks=checks, failed_checks=failed, summary=summary, nvml=info)
    if failed:
        module.fail_json(msg=summary, **result)
    module.exit_json(msg=summary, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            driver_version=dict(type="str"),
            driver_branch=dict(type="str"),
            min_cuda_version=dict(type="str"),
            gpu_count=dict(type="int"),
            product_pattern=dict(type="str"),
            persistence_mode=dict(type="bool"),
            mig_mode=dict(type="str", choices=["enabled", "disabled"]),
            ecc=dict(type="bool"),
            row_remapping=dict(type="bool", default=True),
            retired_pages=dict(type="bool", default=True),
            fabric=dict(type="str", choices=["auto", "required", "ignore"], default="auto"),
            python_interpreters=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    for key in ("min_cuda_version", "driver_version"):
        value = module.params.get(key)
        if value and not re.match(r"^\d+(\.\d+)*$", value):
            module.fail_json(msg="%s must be numbers separated by dots, got %r" % (key, value))
    if module.params.get("product_pattern"):
        try:
            re.compile(module.params["product_pattern"])
        except re.error as err:
            module.fail_json(msg="product_pattern is not a valid regular expression: %s" % err)
    run(module, ROOT)


if __name__ == "__main__":
    main()
