#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: driver_state
short_description: Read everything the driver role decides and verifies from, in one call
version_added: "0.1.0"
description:
  - Reads the installed NVIDIA driver packages (exact names and shell patterns) with their
    versions and hold or versionlock state, the DKMS status, the main NVIDIA kernel module
    built for each named kernel (version, vermagic, signer, mtime), the running driver from
    procfs, the processes that hold C(/dev/nvidia*) devices open (with their systemd unit),
    the state of named systemd units, the existence of named files and commands, and
    optionally whether named packages are installable, whether a MOK certificate is enrolled,
    what C(nvidia-smi) reports, and whether an interpreter can import C(pynvml), with its
    nvidia-ml-py and cuda-bindings versions and its Python version.
  - Never changes the node. The C(gpunode.nvidia.driver) role calls it before deciding and
    again after a change, so that a converged node is re-checked in one round trip.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
extends_documentation_fragment:
  - gpunode.nvidia.attributes.read_only
options:
  packages:
    description: Package names or shell patterns (C(nvidia-*)) whose installed versions to read.
    type: list
    elements: str
    default: []
  available:
    description: Package names to look up in the package manager's cache (no refresh).
    type: list
    elements: str
    default: []
  kernels:
    description: Kernel releases whose main NVIDIA module file to read with modinfo.
    type: list
    elements: str
    default: []
  dkms:
    description: Read C(dkms status).
    type: bool
    default: true
  processes:
    description: List the processes that hold C(/dev/nvidia*) open.
    type: bool
    default: true
  services:
    description: systemd units whose active and enablement state to read.
    type: list
    elements: str
    default: []
  files:
    description: Paths whose existence to report.
    type: list
    elements: path
    default: []
  checksums:
    description:
      - Regular files whose SHA-256, mode, owner and group to report, so that the role can tell
        a node whose files are what it would write without writing them.
    type: list
    elements: path
    default: []
  commands:
    description: Commands whose path on the node to report (null when absent).
    type: list
    elements: str
    default: []
  mok_certificate:
    description: A DER certificate to test for enrolment with C(mokutil --test-key).
    type: path
  nvml_python:
    description:
      - An interpreter to test for an importable C(pynvml), its nvidia-ml-py and cuda-bindings versions
        (read from their C(*.dist-info) directories, nothing imported but pynvml) and its Python version.
    type: path
  nvml_python_base:
    description:
      - The interpreter a venv for C(nvml_python) is made from (C(/usr/bin/python3)). While C(nvml_python)
        does not exist yet, C(nvml_python.python) is this interpreter's Python version.
    type: path
  nvidia_smi:
    description: Run C(nvidia-smi --query-gpu) and report the GPUs and driver version it sees.
    type: bool
    default: false
  kernel_meta:
    description:
      - A headers metapackage (Debian C(linux-headers-amd64), Ubuntu C(linux-headers-generic), EL C(kernel-devel))
        whose current kernel release to report under C(kernel_meta), read from the package cache.
    type: str
notes:
  - Lab and CI nodes have no GPU; there the running driver is null and C(nvidia-smi) fails
    with "couldn't communicate with the NVIDIA driver", which the module reports as such.
"""

EXAMPLES = r"""
- name: Read the driver packages, the module built for a kernel and the GPU users
  gpunode.nvidia.driver_state:
    packages: [nvidia-kernel-dkms, "libnvidia-*"]
    kernels: [6.1.0-28-amd64]
    services: [nvidia-persistenced]
  register: state

- name: Show which driver version DKMS built
  ansible.builtin.debug:
    msg: "{{ state.modules['6.1.0-28-amd64'] | map(attribute='version') }}"
"""

RETURN = r"""
family:
  description: OS family the package queries used.
  returned: always
  type: str
  sample: Debian
packages:
  description: Installed version of every installed package matching C(packages).
  returned: always
  type: dict
  sample: {"nvidia-kernel-dkms": "535.261.03-1"}
held:
  description: Installed packages on hold (apt) or under a versionlock entry (dnf).
  returned: always
  type: list
  elements: str
available:
  description: Whether the cache offers each package in C(available) (null when unknown).
  returned: always
  type: dict
modules:
  description: >-
    Per kernel in C(kernels), the main NVIDIA module files found (path, version, vermagic,
    built_for, signer, sig_key, license, mtime, inode).
  returned: always
  type: dict
headers:
  description: Per kernel in C(kernels), whether its build tree (C(/lib/modules/KERNEL/build)) exists.
  returned: always
  type: dict
dkms:
  description: C(dkms status) entries (module, version, kernel, arch, state, detail); null when not read or dkms is absent.
  returned: always
  type: list
  elements: dict
loaded:
  description: The running driver from C(/proc/driver/nvidia/version) (version, kernel_module_type, banner), or null.
  returned: always
  type: dict
processes:
  description: Processes holding C(/dev/nvidia*) open (pid, comm, cmdline, unit, devices).
  returned: always
  type: list
  elements: dict
services:
  description: C(active) and C(enabled) state of each unit in C(services).
  returned: always
  type: dict
files:
  description: Whether each path in C(files) exists.
  returned: always
  type: dict
checksums:
  description: Per path in C(checksums), its C(sha256), C(mode) (four octal digits), C(uid) and C(gid); null when it is not a regular file.
  returned: always
  type: dict
  sample: {"/etc/modprobe.d/gpunode-blacklist-nouveau.conf": {"sha256": "9f2c...", "mode": "0644", "uid": 0, "gid": 0}}
commands:
  description: Path of each command in C(commands), null when absent.
  returned: always
  type: dict
mok:
  description: The certificate tested and whether it is enrolled (null when unknown); null when not asked.
  returned: always
  type: dict
nvml_python:
  description:
    - The interpreter tested (C(path)), whether it C(exists), imports C(pynvml), its nvidia-ml-py C(version),
      its C(cuda_bindings) version (null when not installed) and its C(python) version (that of
      C(nvml_python_base) while the interpreter does not exist; null when unknown); null when not asked.
  returned: always
  type: dict
  sample: {"path": "/opt/gpunode/venv/bin/python3", "exists": true, "pynvml": true, "version": "13.615.71",
           "cuda_bindings": "12.9.4", "python": "3.11.2"}
nvidia_smi:
  description: C(rc), C(gpus) (index, name, driver_version) and the first line of any C(error); null when not asked.
  returned: always
  type: dict
nvml_library:
  description: The NVML library the loader finds (path, version), or null.
  returned: always
  type: dict
kernel_meta:
  description: The C(package) asked about in C(kernel_meta) and the C(kernel) release it stands for (null when unknown); null when not asked.
  returned: always
  type: dict
  sample: {"package": "linux-headers-amd64", "kernel": "6.1.0-56-amd64"}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.module_utils import driver, host, packages, sysfs
from ansible_collections.gpunode.nvidia.plugins.module_utils.runner import make_runner, make_which


def gather(root, params, run, which, sha256):
    """Everything the module returns; ``run``, ``which`` and ``sha256`` come from the module."""
    family = host.os_facts(root)["family"]
    versions, held = packages.installed(family, params["packages"], run, root)
    kernels = params["kernels"]
    dkms = None
    if params["dkms"] and which("dkms"):
        rc, out, _err = run(["dkms", "status"])
        dkms = driver.parse_dkms_status(out) if rc == 0 else None
    result = {
        "family": family,
        "packages": versions,
        "held": held,
        "available": packages.available(family, params["available"], run),
        "modules": dict((k, driver.kernel_modules(k, run, root)) for k in kernels),
        "headers": dict((k, host.headers_installed(k, root)) for k in kernels),
        "dkms": dkms,
        "loaded": sysfs.loaded_driver(root),
        "processes": driver.gpu_processes(root, os.getpid()) if params["processes"] else [],
        "services": host.service_states(params["services"], run),
        "files": dict((p, os.path.exists(_under(root, p))) for p in params["files"]),
        "checksums": host.file_states(params["checksums"], sha256, root),
        "commands": dict((c, which(c)) for c in params["commands"]),
        "mok": None,
        "nvml_python": None,
        "nvidia_smi": None,
        "nvml_library": host.nvml_library(run, root),
        "kernel_meta": None,
    }
    if params.get("kernel_meta"):
        result["kernel_meta"] = {"package": params["kernel_meta"], "kernel": packages.packaged_kernel(family, params["kernel_meta"], run)}
    if params.get("mok_certificate"):
        cert = params["mok_certificate"]
        enrolled = driver.mok_enrolled(cert, run) if which("mokutil") and os.path.exists(_under(root, cert)) else None
        result["mok"] = {"certificate": cert, "enrolled": enrolled}
    if params.get("nvml_python"):
        result["nvml_python"] = driver.nvml_python(params["nvml_python"], run, params.get("nvml_python_base"))
    if params["nvidia_smi"]:
        result["nvidia_smi"] = driver.nvidia_smi_query(run)
    return result


def _under(root, path):
    return os.path.join(root, path.lstrip("/"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            available=dict(type="list", elements="str", default=[]),
            kernels=dict(type="list", elements="str", default=[]),
            dkms=dict(type="bool", default=True),
            processes=dict(type="bool", default=True),
            services=dict(type="list", elements="str", default=[]),
            files=dict(type="list", elements="path", default=[]),
            checksums=dict(type="list", elements="path", default=[]),
            commands=dict(type="list", elements="str", default=[]),
            mok_certificate=dict(type="path"),
            nvml_python=dict(type="path"),
            nvml_python_base=dict(type="path"),
            nvidia_smi=dict(type="bool", default=False),
            kernel_meta=dict(type="str"),
        ),
        supports_check_mode=True,
    )

    result = gather("/", module.params, make_runner(module), make_which(module), module.sha256)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
