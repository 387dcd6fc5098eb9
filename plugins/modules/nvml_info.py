#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: nvml_info
short_description: Read the NVIDIA driver and every GPU through NVML in one call
version_added: "0.1.0"
description:
  - Reads the driver, CUDA driver and NVML versions and, for every GPU, its index, name, UUID, PCI bus id,
    memory, persistence mode, MIG mode (current and pending) and MIG devices, ECC mode and uncorrected error
    counts, compute mode, compute capability, temperature, power draw, clock event (throttle) reasons,
    remapped rows, retired pages, NVLink state and GPU fabric state.
  - A feature the GPU, the driver or the Python binding does not offer is reported as null and named in the
    GPU's C(not_supported) list, never as a failure. Older bindings and drivers fall back to the older NVML
    calls (C(nvmlDeviceGetTemperature), C(nvmlDeviceGetCurrentClocksThrottleReasons)).
  - Fails only when NVML cannot start, with a message that says what to do (library missing, driver not
    loaded and why, driver/library version mismatch, GPU lost, no permission).
  - Uses nvidia-ml-py (C(pynvml)). When the module's Python lacks it, the module re-runs itself under the
    first of O(python_interpreters) and a list of known places that has it.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
requirements:
  - nvidia-ml-py (C(import pynvml)) on the node, in any Python the module can reach
  - the NVIDIA driver (C(libnvidia-ml.so.1) and the loaded kernel module)
extends_documentation_fragment:
  - gpunode.nvidia.attributes.read_only
options:
  python_interpreters:
    description:
      - Python interpreters to try, in order, when the module's own Python cannot import C(pynvml).
      - Tried before C(/opt/gpunode/venv/bin/python3), C(/usr/bin/python3), C(/usr/libexec/platform-python)
        and C(/usr/bin/python3.{12,11,9}).
      - The gpunode.nvidia.driver role publishes the interpreter of the venv it prepares as C(driver_nvml_python).
    type: list
    elements: path
    default: []
notes:
  - Run it with become; NVML needs access to C(/dev/nvidia*).
  - Lab and CI nodes have no GPU; there the module fails with the reason NVML gives (library missing,
    driver not loaded), which is correct.
seealso:
  - module: gpunode.nvidia.nvml_check
"""

EXAMPLES = r"""
- name: Read every GPU
  gpunode.nvidia.nvml_info:
  become: true
  register: nvml

- name: Show the GPUs
  ansible.builtin.debug:
    msg: "{{ nvml.driver_version }}: {{ nvml.gpus | map(attribute='name') | list }}"

- name: Read with the Python the driver role prepared
  gpunode.nvidia.nvml_info:
    python_interpreters: ["{{ driver_nvml_python }}"]
  become: true
"""

RETURN = r"""
driver_version:
  description: Driver version as NVML reports it.
  returned: success
  type: str
  sample: "580.159.04"
cuda_driver_version:
  description: Highest CUDA version the driver supports, C(major.minor); null when NVML does not say.
  returned: success
  type: str
  sample: "13.0"
nvml_version:
  description: NVML library version; null when not offered.
  returned: success
  type: str
  sample: "13.580.159.04"
gpu_count:
  description: Number of GPUs NVML sees.
  returned: success
  type: int
  sample: 1
gpus:
  description: One entry per GPU, by NVML index. Fields a GPU does not support are null and named in C(not_supported).
  returned: success
  type: list
  elements: dict
  contains:
    index:
      description: NVML index.
      type: int
    name:
      description: Product name.
      type: str
      sample: NVIDIA H100 80GB HBM3
    uuid:
      description: GPU UUID.
      type: str
    pci_bus_id:
      description: PCI bus id in NVML's form.
      type: str
      sample: "00000000:18:00.0"
    memory:
      description: C(total_mib), C(used_mib), C(free_mib).
      type: dict
    persistence_mode:
      description: Whether persistence mode is on.
      type: bool
    mig:
      description: C(current) and C(pending) MIG mode (true = enabled) and C(devices) (index, uuid, name, memory_total_mib, gpu_instance_id).
      type: dict
    ecc:
      description: C(current) and C(pending) ECC mode, C(volatile_uncorrected) and C(aggregate_uncorrected) error counts.
      type: dict
    compute_mode:
      description: default, exclusive_process, prohibited (or exclusive_thread on old drivers).
      type: str
    compute_capability:
      description: CUDA compute capability, C(major.minor).
      type: str
      sample: "9.0"
    temperature_c:
      description: GPU core temperature in Celsius.
      type: int
    power_w:
      description: Power draw in watts.
      type: float
    clock_event_reasons:
      description: C(mask) and the C(active) reason names (gpu_idle, sw_power_cap, hw_slowdown, sw_thermal_slowdown, ...).
      type: dict
    remapped_rows:
      description: C(correctable), C(uncorrectable) row remap counts, remap C(pending) and remap C(failure).
      type: dict
    retired_pages:
      description: C(single_bit_ecc) and C(double_bit_ecc) retired page counts and whether a retirement is C(pending).
      type: dict
    nvlink:
      description: C(links) (how many), C(active) (how many up) and C(inactive_links) (indexes).
      type: dict
    fabric:
      description: GPU fabric C(state) (not_started, in_progress, completed), C(status), C(clique_id), C(cluster_uuid).
      type: dict
    not_supported:
      description: Fields this GPU, driver or binding does not offer.
      type: list
      elements: str
      sample: [retired_pages, nvlink, fabric]
    errors:
      description: Fields whose read failed, with the explained NVML error.
      type: dict
nvml_error:
  description: On failure, the NVML error's name (for example C(DRIVER_NOT_LOADED)), or C(BINDING_MISSING).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.module_utils import nvml

# The node's filesystem root, read for the diagnosis of NVML errors; tests point it at a host tree.
ROOT = "/"


def run(module, root):
    lib = nvml.load_pynvml(module, module.params["python_interpreters"])
    try:
        info = nvml.read_all(lib, root)
    except nvml.NvmlFailure as failure:
        module.fail_json(msg=failure.message, nvml_error=failure.name)
    module.exit_json(changed=False, **info)


def main():
    module = AnsibleModule(
        argument_spec=dict(python_interpreters=dict(type="list", elements="path", default=[])),
        supports_check_mode=True,
    )
    run(module, ROOT)


if __name__ == "__main__":
    main()
