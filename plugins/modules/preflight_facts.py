#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: preflight_facts
short_description: Read everything that decides an NVIDIA GPU node's setup in one round trip
version_added: "0.1.0"
description:
  - Reads NVIDIA GPUs and NVSwitches on the PCI bus (sysfs, vendor C(0x10de) and device class),
    the loaded kernel modules (nvidia, nouveau and friends), the running driver
    (C(/proc/driver/nvidia/version)), NVIDIA kernel modules installed per kernel, the NVML
    userspace library, UEFI Secure Boot, the kernel and whether its build headers are installed
    or installable, virtualization, init system, OS and architecture.
  - The package manager's health, to repair before anything is installed - an interrupted dpkg, packages a
    killed run left half-way, an unfinished dnf transaction - and who holds its locks.
  - Optionally also the installed versions of named packages, the state of named systemd units
    and the SHA-256 of named files, so that later roles can decide from this one call.
  - Publishes everything as the fact C(gpunode_preflight). It never changes the node and never
    fails because of what it finds; the C(gpunode.nvidia.preflight) role judges the result.
  - Needs no library beyond the Python standard library and reads repository metadata from the
    package manager's cache only.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
attributes:
  facts:
    support: full
    description: Publishes C(gpunode_preflight).
extends_documentation_fragment:
  - gpunode.nvidia.attributes.read_only
options:
  kernel_release:
    description:
      - Kernel release whose build headers and installed NVIDIA modules to report on.
      - Defaults to the running kernel. Set it where the driver is built for another kernel
        (an image build, or a container whose running kernel is the host's).
    type: str
  packages:
    description: Package names whose installed version to report under C(packages).
    type: list
    elements: str
    default: []
  services:
    description: systemd units whose active and enablement state to report under C(services).
    type: list
    elements: str
    default: []
  files:
    description: Paths whose SHA-256 (or null when absent) to report under C(files).
    type: list
    elements: path
    default: []
notes:
  - Lab and CI nodes have no GPU; on them the module reports an empty GPU list, which is correct.
"""

EXAMPLES = r"""
- name: Read the node
  gpunode.nvidia.preflight_facts:

- name: Read the node, the driver packages and persistenced in the same call
  gpunode.nvidia.preflight_facts:
    kernel_release: 6.1.0-28-amd64
    packages: [nvidia-kernel-dkms, libnvidia-ml1]
    services: [nvidia-persistenced]

- name: Show the GPUs found
  ansible.builtin.debug:
    msg: "{{ gpunode_preflight.gpus.count }} GPU(s): {{ gpunode_preflight.gpus.devices | map(attribute='address') }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts published by the module.
  returned: always
  type: dict
  contains:
    gpunode_preflight:
      description: What was read.
      type: dict
      contains:
        os:
          description: C(id), C(name), C(family) (Ansible's OS family), C(version), C(major_version), C(codename).
          type: dict
          sample: {"id": "debian", "family": "Debian", "version": "12", "major_version": "12", "codename": "bookworm"}
        architecture:
          description: Machine architecture.
          type: str
          sample: x86_64
        init:
          description: PID 1's name and whether systemd manages this boot.
          type: dict
          sample: {"pid1": "systemd", "systemd": true}
        virtualization:
          description: Container and VM technology (C(none) when bare), null when unknown.
          type: dict
          sample: {"container": "podman", "vm": "none"}
        kernel:
          description: >-
            C(running) release, the C(target) release reported on, whether its headers are
            C(headers_installed), the C(headers_package) and whether it is C(headers_available)
            from the package cache (null when unknown).
          type: dict
        secure_boot:
          description: C(firmware) (uefi or bios), C(enabled) (null when unreadable) and C(setup_mode).
          type: dict
        gpus:
          description: NVIDIA GPUs on the PCI bus, C(count) and C(devices) (address, vendor, device, class, subsystem ids, bound driver, NUMA node).
          type: dict
        nvswitches:
          description: NVSwitches on the PCI bus (C(count), C(devices)) and the entries in C(/proc/driver/nvidia-nvswitch/devices) (C(procfs)).
          type: dict
        modules:
          description: >-
            Whether each of nvidia, nvidia_uvm, nvidia_modeset, nvidia_drm, nvidia_peermem and nouveau
            is loaded (null when unknown), and the C(source) read.
          type: dict
        driver:
          description: >-
            C(loaded) (version, kernel_module_type open or proprietary, banner) from procfs, or null;
            C(installed_modules) nvidia.ko paths per kernel; C(nvml_library) path and version of libnvidia-ml.so.1, or null.
          type: dict
        packages:
          description: Installed version of each requested package (with its epoch where that is not 0), null when not installed.
          type: dict
          sample: {"nvidia-kernel-dkms": "535.216.01-1~deb12u1", "libnvidia-ml1": null}
        services:
          description: C(active) and C(enabled) state of each requested unit.
          type: dict
        files:
          description: SHA-256 of each requested file, null when absent.
          type: dict
        package_manager:
          description: >-
            The package manager's health (see M(gpunode.nvidia.package_repair)): C(manager) (dpkg or rpm),
            C(interrupted) (dpkg's journal holds updates a killed dpkg did not fold in), C(pending) (packages
            left half-installed, unpacked, half-configured, with triggers not run, or on EL installed in two
            versions: name and state), C(locks) (held locks: path, pid, command), C(healthy) and C(repair)
            (the command lines that would repair it).
          type: dict
          sample: {"manager": "dpkg", "interrupted": true, "pending": [{"name": "containerd", "state": "half-configured"}],
                   "locks": [], "healthy": false, "repair": ["dpkg --force-confdef --force-confold --configure -a"]}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.module_utils import host, packages, pkg_health, sysfs
from ansible_collections.gpunode.nvidia.plugins.module_utils.runner import make_runner

WATCHED_MODULES = ("nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm", "nvidia_peermem", "nouveau")


def gather(root, params, run, sha256):
    """Everything the fact holds; ``run`` and ``sha256`` come from the module."""
    os_info = host.os_facts(root)
    running = host.kernel_release()
    target = params.get("kernel_release") or running
    gpus, nvswitches = sysfs.nvidia_pci(root)
    loaded, modules_source = sysfs.kernel_modules(WATCHED_MODULES, root)
    modules = dict(loaded)
    modules["source"] = modules_source
    headers_pkg = packages.headers_package(os_info["family"], target)
    return {
        "os": os_info,
        "architecture": host.architecture(),
        "init": host.init_system(root),
        "virtualization": host.virtualization(root, run),
        "kernel": {
            "running": running,
            "target": target,
            "headers_installed": host.headers_installed(target, root),
            "headers_package": headers_pkg,
            "headers_available": packages.available(os_info["family"], [headers_pkg], run)[headers_pkg] if headers_pkg else None,
        },
        "secure_boot": sysfs.secure_boot(root),
        "gpus": {"count": len(gpus), "devices": gpus},
        "nvswitches": {
            "count": len(nvswitches),
            "devices": nvswitches,
            "procfs": sysfs.nvswitch_procfs_devices(root),
        },
        "modules": modules,
        "driver": {
            "loaded": sysfs.loaded_driver(root),
            "installed_modules": host.installed_nvidia_modules(root),
            "nvml_library": host.nvml_library(run, root),
        },
        "packages": packages.versions(os_info["family"], params.get("packages") or [], run, root),
        "package_manager": pkg_health.health(os_info["family"], run, root),
        "services": host.service_states(params.get("services") or [], run),
        "files": dict((p, sha256(p) if os.path.isfile(p) else None) for p in params.get("files") or []),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kernel_release=dict(type="str"),
            packages=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            files=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    facts = gather("/", module.params, make_runner(module), module.sha256)
    module.exit_json(changed=False, ansible_facts={"gpunode_preflight": facts})


if __name__ == "__main__":
    main()
