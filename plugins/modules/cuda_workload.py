#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: cuda_workload
short_description: Run a CUDA vector add on every GPU, on the host and through the container runtime
version_added: "0.2.0"
description:
  - On each GPU (or those in O(devices)), retains the primary CUDA context, loads a small PTX kernel with
    C(cuModuleLoadData) (the driver compiles it, so no CUDA toolkit is needed on the node), allocates, copies two vectors in,
    launches the kernel, copies the sum back and compares it. Reports per GPU whether it passed, its name,
    UUID and compute capability, the JIT and kernel times and, on failure, the CUDA error's name and what to do.
  - Talks to the node's C(libcuda.so.1) through NVIDIA's Python bindings (C(cuda-bindings), module
    C(cuda.bindings.driver)), which the gpunode.nvidia.driver role installs in the venv it prepares for
    nvidia-ml-py. When the module's Python lacks them, the module re-runs itself under the first of
    O(python_interpreters) and a list of known places that has them.
  - Before loading anything, reads sysfs and procfs; a node without an NVIDIA GPU on the PCI bus, or whose
    nvidia kernel module is not loaded, is reported so (with the likely cause), never as a traceback.
  - With O(container), runs the same workload in a container that containerd starts through the NVIDIA
    runtime, from the image gpunode.nvidia.cuda_workload_image made on the node; the image has no driver
    library, so a pass proves the runtime injects C(libcuda.so.1) and the devices. The container is removed.
  - Only reads (the container is run with C(--rm)), so it runs in check mode too.
  - A field the GPU, driver or binding does not offer (the UUID on old bindings) is null and named in the
    GPU's C(not_supported) list, never a failure.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
requirements:
  - cuda-bindings (C(import cuda.bindings.driver)) on the node, in any Python the module can reach (for the host run)
  - the NVIDIA driver (C(libcuda.so.1) and the loaded kernel module)
  - C(ctr) and the NVIDIA container runtime, for O(container)
extends_documentation_fragment:
  - gpunode.nvidia.attributes.read_only
options:
  devices:
    description: CUDA device indexes to run on; empty means every GPU CUDA sees.
    type: list
    elements: int
    default: []
  elements:
    description: Length of the vectors added (float32); the default, 1 Mi, moves 12 MiB per GPU.
    type: int
    default: 1048576
  host:
    description: Run the workload on the host. V(false) runs only the container part.
    type: bool
    default: true
  expected_gpus:
    description:
      - GPUs CUDA must see on the host (what NVML saw); fewer fail the run, naming the likely cause. Omit it where MIG is
        on (a CUDA process sees one MIG device) or to not check.
    type: int
  min_cuda_version:
    description:
      - Lowest CUDA version, C(major.minor), the driver's C(libcuda.so.1) must support (what C(cuDriverGetVersion)
        says, which the CUDA forward compatibility package raises); the failure names the driver branch to install.
    type: str
  python_interpreters:
    description:
      - Python interpreters to try, in order, when the module's own Python cannot import C(cuda.bindings.driver).
      - The gpunode.nvidia.driver role publishes the interpreter of its venv as C(gpunode_driver.nvml_python).
    type: list
    elements: path
    default: []
  container:
    description: Also run the workload in a container through the NVIDIA runtime (the return of gpunode.nvidia.cuda_workload_image).
    type: dict
    suboptions:
      image:
        description: The workload image's reference in containerd.
        type: str
        required: true
      command:
        description: The workload's command in the image (the C(command) gpunode.nvidia.cuda_workload_image returns).
        type: list
        elements: str
        required: true
      runtime_binary:
        description: The OCI runtime C(ctr) runs the container with (C(--runc-binary)).
        type: path
        default: /usr/bin/nvidia-container-runtime
      namespace:
        description: The containerd namespace the image is in.
        type: str
        default: gpunode-validate
      visible_devices:
        description: C(NVIDIA_VISIBLE_DEVICES) for the container (V(all), indexes or UUIDs); not set when O(container.cdi_devices) is given.
        type: str
        default: all
      timeout:
        description: Seconds the container may run; then it is killed and removed, and the run fails with C(CONTAINER_TIMEOUT).
        type: int
        default: 120
      cdi_devices:
        description:
          - CDI device names (for example V(nvidia.com/gpu=all)) to request instead of C(NVIDIA_VISIBLE_DEVICES), passed as
            C(ctr run --device); C(ctr) reads the CDI spec the toolkit generated (C(ctr) of containerd 2.0 and later).
        type: list
        elements: str
        default: []
"""

EXAMPLES = r"""
- name: Add two vectors on every GPU of the node
  gpunode.nvidia.cuda_workload:
    python_interpreters: ["{{ gpunode_driver.nvml_python }}"]
    min_cuda_version: "12.8"

- name: Make the workload image, then run the workload on the host and through the runtime
  gpunode.nvidia.cuda_workload_image:
  register: image

- name: Run it
  gpunode.nvidia.cuda_workload:
    container:
      image: "{{ image.image }}"
      command: "{{ image.command }}"
"""

RETURN = r"""
passed:
  description: Whether every part asked for passed on every GPU.
  returned: always
  type: bool
summary:
  description: One line for people.
  returned: always
  type: str
  sample: "vector add passed on 1 of 1 GPU(s) on the host (CUDA 13.0) and 1 of 1 in a container"
cuda_driver_version:
  description: The CUDA version the driver's libcuda.so.1 supports, C(major.minor), from the host run.
  returned: always
  type: str
  sample: "13.0"
host:
  description: The host run; null when O(host=false).
  returned: always
  type: dict
  contains:
    error:
      description: >-
        Why the run could not start: C(NO_GPU), C(DRIVER_NOT_LOADED), C(BINDING_MISSING), C(LIBRARY_NOT_FOUND) or the
        CUresult of C(cuInit) (for example C(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)); null when it started.
      type: str
    message:
      description: What went wrong and what to do.
      type: str
    device_count:
      description: GPUs CUDA sees.
      type: int
    devices:
      description: One entry per GPU run.
      type: list
      elements: dict
      contains:
        index: {description: CUDA device index., type: int}
        name: {description: The GPU's name., type: str}
        uuid: {description: The GPU's UUID (C(GPU-...)); null when not supported., type: str}
        compute_capability: {description: C(major.minor)., type: str}
        passed: {description: Whether the sums came back right., type: bool}
        error: {description: "The CUresult name (C(CUDA_ERROR_LAUNCH_FAILED)), C(COMPUTE_MODE_PROHIBITED) or C(RESULT_MISMATCH).", type: str}
        message: {description: "What happened, and on failure what to do.", type: str}
        elapsed_s: {description: Seconds for the whole GPU run., type: float}
        jit_s: {description: Seconds to load (JIT-compile) the kernel., type: float}
        kernel_s: {description: Seconds for the launch and synchronisation., type: float}
        not_supported: {description: "Fields this GPU, driver or binding does not offer.", type: list, elements: str}
container:
  description: The container run (the same keys as RV(host), plus C(rc), C(libcuda) (where the container found it) and C(command)); null without O(container).
  returned: always
  type: dict
checks:
  description: The verdicts, in order (C(host), C(container), C(gpu_count), C(min_cuda_version)), each with C(status) and C(message).
  returned: always
  type: list
  elements: dict
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload, interpreters, nvml, sysfs

# The node's filesystem root, read for the diagnosis; tests point it at a host tree.
ROOT = "/"
BINDING = "cuda-bindings (import cuda.bindings.driver)"
BINDING_URL = "https://pypi.org/project/cuda-bindings/"
BINDING_HINT = (
    "The gpunode.nvidia.driver role installs it in the venv it prepares (driver_cuda_bindings_package) and publishes"
    " that venv's Python as gpunode_driver.nvml_python: pass it as python_interpreters."
)
NO_GPU = "no NVIDIA GPU on the PCI bus: there is nothing to run CUDA on (check `lspci -d 10de:`, BIOS, seating)"


def _failed_start(error, message):
    return {"error": error, "message": message, "cuda_driver_version": None, "device_count": None, "devices": []}


def node_problem(root):
    """Why CUDA cannot run on this node at all (no GPU, driver not loaded), read from sysfs; None when it may."""
    gpus, _nvswitches = sysfs.nvidia_pci(root)
    if not gpus:
        return _failed_start("NO_GPU", NO_GPU)
    loaded, _source = sysfs.kernel_modules(("nvidia",), root)
    if not loaded.get("nvidia"):
        causes = nvml.driver_not_loaded_causes(root)
        return _failed_start("DRIVER_NOT_LOADED", "NVIDIA driver not loaded (the nvidia kernel module is not running): %s"
                             % ("; ".join(causes) or "check `dmesg | grep -i nvrm` and `modprobe nvidia`"))
    return None


def host_run(module, root):
    problem = node_problem(root)
    if problem:
        return problem
    api, trace = workload.import_binding()
    if api is None:
        tried = interpreters.respawn_for("cuda.bindings.driver", module.params["python_interpreters"])
        message = "%s. %s" % (missing_required_lib(BINDING, reason="to run the CUDA workload", url=BINDING_URL), BINDING_HINT)
        result = _failed_start(workload.BINDING_MISSING, message)
        result["interpreters_tried"] = tried
        result["import_error"] = trace
        return result
    return workload.run_all(api, module.params["devices"], module.params["elements"])


def _container_cleanup(module, ctr, namespace, name):
    """What a killed `ctr run --rm` leaves: its task and container."""
    module.run_command([ctr, "--namespace", namespace, "task", "kill", "--signal", "SIGKILL", name])
    module.run_command([ctr, "--namespace", namespace, "task", "delete", "--force", name])
    module.run_command([ctr, "--namespace", namespace, "containers", "delete", name])


def container_run(module, spec):
    ctr = module.get_bin_path("ctr")
    if not ctr:
        return _failed_start("CTR_MISSING", "ctr is not installed: install containerd (the gpunode.nvidia.containerd role)")
    name = "gpunode-cuda-%d" % int(time.time() * 1000)
    argv = [ctr, "--namespace", spec["namespace"], "run", "--rm", "--runc-binary", spec["runtime_binary"]]
    if spec["cdi_devices"]:
        for name in spec["cdi_devices"]:
            argv += ["--device", name]
    else:
        argv += ["--env", "NVIDIA_VISIBLE_DEVICES=" + spec["visible_devices"]]
    # compute: libcuda and the PTX JIT; utility: NVML. Without compute the runtime injects no CUDA library.
    argv += ["--env", "NVIDIA_DRIVER_CAPABILITIES=compute,utility", spec["image"], name]
    argv += list(spec["command"])
    for index in module.params["devices"]:
        argv += ["--device", str(index)]
    argv += ["--elements", str(module.params["elements"])]
    limit = module.get_bin_path("timeout")
    rc, out, err = module.run_command(([limit, "--kill-after=10", str(spec["timeout"])] if limit else []) + argv)
    if limit and rc in (124, 137):
        _container_cleanup(module, ctr, spec["namespace"], name)
        report = _failed_start("CONTAINER_TIMEOUT", "the container ran past %d s and was killed and removed: the runtime or a GPU hangs"
                               " (read `dmesg | grep -i xid` and the runtime's log, /var/log/nvidia-container-runtime.log)" % spec["timeout"])
        report.update(rc=rc, command=argv)
        return report
    lines = [line for line in out.splitlines() if line.strip().startswith("{")]
    try:
        report = json.loads(lines[-1]) if lines else None
    except ValueError:
        report = None
    if report is None:
        last = [line.strip() for line in (err + "\n" + out).splitlines() if line.strip()]
        report = _failed_start("CONTAINER_FAILED", "the container did not run (rc %d): %s" % (rc, last[-1] if last else "no output"))
    report["rc"] = rc
    report["command"] = argv
    if report.get("error") == workload.LIBRARY_NOT_FOUND:
        report["message"] = (
            "libcuda.so.1 is not in the container: the runtime (%s) did not inject the driver's CUDA library. %s"
            % (spec["runtime_binary"], workload.ADVICE[workload.LIBRARY_NOT_FOUND]))
    return report


def verdict(name, run):
    """(status, message) of one run: pass only when it started and every GPU it ran on passed."""
    if run.get("error"):
        return {"check": name, "status": "fail", "error": run["error"], "message": run["message"]}
    devices = run.get("devices") or []
    failed = [d for d in devices if not d.get("passed")]
    if not devices:
        return {"check": name, "status": "fail", "error": "CUDA_ERROR_NO_DEVICE", "message": workload.ADVICE["CUDA_ERROR_NO_DEVICE"]}
    if failed:
        text = "; ".join("GPU %s: %s" % (d["index"], d["message"]) for d in failed)
        return {"check": name, "status": "fail", "error": failed[0]["error"],
                "message": "vector add failed on %d of %d GPU(s): %s" % (len(failed), len(devices), text)}
    where = "on the host" if name == "host" else "in a container (libcuda from %s)" % (run.get("libcuda") or "?")
    return {"check": name, "status": "pass", "error": None,
            "message": "vector add passed on %d of %d GPU(s) %s (CUDA %s)" % (len(devices), len(devices), where, run.get("cuda_driver_version"))}


def count_check(host, expected):
    """Whether CUDA sees as many GPUs as NVML did; None when not asked or the run did not start."""
    if expected is None or host is None or host.get("device_count") is None:
        return None
    seen = host["device_count"]
    if seen >= expected:
        return {"check": "gpu_count", "status": "pass", "error": None, "message": "CUDA sees %d GPU(s), as NVML does" % seen}
    return {"check": "gpu_count", "status": "fail", "error": "GPU_COUNT",
            "message": "CUDA sees %d GPU(s), NVML %d: a GPU in MIG mode with no instance, CUDA_VISIBLE_DEVICES set for the node's"
                       " processes, or a GPU the driver did not bring up (dmesg: Xid, NVRM)" % (seen, expected)}


def run(module, root):
    params = module.params
    host = host_run(module, root) if params["host"] else None
    container = container_run(module, params["container"]) if params["container"] else None
    checks = []
    for name, part in (("host", host), ("container", container)):
        if part is not None:
            checks.append(verdict(name, part))
    counted = count_check(host, params["expected_gpus"])
    if counted:
        checks.append(counted)
    cuda = (host or {}).get("cuda_driver_version") or (container or {}).get("cuda_driver_version")
    if params["min_cuda_version"] and cuda is not None:
        problem = workload.cuda_version_problem(cuda, params["min_cuda_version"])
        checks.append({"check": "min_cuda_version", "status": "fail" if problem else "pass", "error": "CUDA_VERSION" if problem else None,
                       "message": problem or "the driver supports CUDA %s (at least %s)" % (cuda, params["min_cuda_version"])})
    failed = [c for c in checks if c["status"] != "pass"]
    summary = "; ".join(c["message"] for c in (failed or checks)) or "nothing to run (host: false and no container)"
    result = {"changed": False, "passed": bool(checks) and not failed, "summary": summary, "cuda_driver_version": cuda,
              "host": host, "container": container, "checks": checks}
    if not result["passed"]:
        module.fail_json(msg=summary, **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            devices=dict(type="list", elements="int", default=[]),
            elements=dict(type="int", default=workload.DEFAULT_ELEMENTS),
            host=dict(type="bool", default=True),
            expected_gpus=dict(type="int"),
            min_cuda_version=dict(type="str"),
            python_interpreters=dict(type="list", elements="path", default=[]),
            container=dict(
                type="dict",
                options=dict(
                    image=dict(type="str", required=True),
                    command=dict(type="list", elements="str", required=True),
                    runtime_binary=dict(type="path", default="/usr/bin/nvidia-container-runtime"),
                    namespace=dict(type="str", default="gpunode-validate"),
                    visible_devices=dict(type="str", default="all"),
                    cdi_devices=dict(type="list", elements="str", default=[]),
                    timeout=dict(type="int", default=120),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["elements"] < 1 or params["elements"] > 1 << 28:
        module.fail_json(msg="elements must be between 1 and %d, not %d" % (1 << 28, params["elements"]))
    if any(index < 0 for index in params["devices"]):
        module.fail_json(msg="devices are CUDA device indexes (0 and up), not %s" % params["devices"])
    if params["container"] and params["container"]["timeout"] < 1:
        module.fail_json(msg="container.timeout must be at least 1 second, not %d" % params["container"]["timeout"])
    if params["min_cuda_version"] and not nvml.version_tuple(params["min_cuda_version"]):
        module.fail_json(msg="min_cuda_version must be major.minor, such as 12.8, not %r" % params["min_cuda_version"])
    run(module, ROOT)


if __name__ == "__main__":
    main()
