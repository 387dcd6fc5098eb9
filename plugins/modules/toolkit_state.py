#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: toolkit_state
short_description: Read the NVIDIA Container Toolkit on a node in one call
version_added: "0.2.0"
description:
  - Reads the installed versions and holds (apt) or version locks (dnf) of named packages, the
    version C(nvidia-ctk --version) reports, which named binaries exist, the content, mode and
    owner of named small files, the state of named systemd units, the loaded NVIDIA driver, the
    CDI devices C(nvidia-ctk cdi list) finds, and which C(/dev/nvidia*) devices lack their
    C(/dev/char) link.
  - Never changes the node. The C(gpunode.nvidia.container_toolkit) role decides from it, so
    that a converged node is re-checked in one round trip.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
extends_documentation_fragment:
  - gpunode.nvidia.attributes.read_only
options:
  packages:
    description: Package names whose installed version and hold state to read.
    type: list
    elements: str
    default: []
  binaries:
    description: Paths of programs whose existence to report.
    type: list
    elements: path
    default: []
  files:
    description: Paths of small text files whose content (up to 64 KiB), mode and owner to report.
    type: list
    elements: path
    default: []
  services:
    description: systemd units whose active and enablement state to read.
    type: list
    elements: str
    default: []
  ctk:
    description: Path of C(nvidia-ctk); its version is read, and the CDI devices when O(cdi_list) is set.
    type: path
    default: /usr/bin/nvidia-ctk
  cdi_list:
    description: Run C(nvidia-ctk cdi list) to report the CDI devices in the spec directories.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Read the toolkit
  gpunode.nvidia.toolkit_state:
    packages: [nvidia-container-toolkit, nvidia-container-toolkit-base, libnvidia-container-tools, libnvidia-container1]
    binaries: [/usr/bin/nvidia-ctk, /usr/bin/nvidia-container-runtime]
    files: [/etc/apt/sources.list.d/gpunode-nvidia-container-toolkit.sources]
    services: [nvidia-cdi-refresh.path, nvidia-cdi-refresh.service]
  register: toolkit
"""

RETURN = r"""
family:
  description: The package family read (Debian or RedHat).
  returned: always
  type: str
packages:
  description: Installed version of each of O(packages), null when not installed.
  returned: always
  type: dict
  sample: {nvidia-container-toolkit: 1.20.0-1, libnvidia-container1: null}
held:
  description: Those of O(packages) that are held (apt) or version locked (dnf).
  returned: always
  type: list
  elements: str
ctk_version:
  description: The version C(nvidia-ctk --version) reports, null when it is missing or fails.
  returned: always
  type: str
binaries:
  description: Whether each of O(binaries) exists and is executable.
  returned: always
  type: dict
files:
  description: For each of O(files), C(exists), C(mode), C(uid), C(gid) and C(content) (null for larger or binary files).
  returned: always
  type: dict
services:
  description: C(active) and C(enabled) state of each of O(services) (null where unknown).
  returned: always
  type: dict
driver:
  description: The loaded NVIDIA driver (C(version), C(kernel_module_type), C(banner)), null when none is loaded.
  returned: always
  type: dict
cdi:
  description: C(devices), the CDI device names C(nvidia-ctk cdi list) finds (null when not asked or not possible).
  returned: always
  type: dict
dev_char:
  description: C(devices), the C(/dev/nvidia*) character devices, and C(missing), those without a C(/dev/char) link.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.module_utils import host, packages, sysfs, toolkit
from ansible_collections.gpunode.nvidia.plugins.module_utils.runner import make_runner


def gather(params, run, root="/"):
    family = host.os_facts(root)["family"]
    versions, held = packages.installed(family, params["packages"], run, root)
    ctk = params["ctk"]
    has_ctk = os.access(sysfs._path(root, ctk), os.X_OK)
    ctk_version = None
    devices = None
    if has_ctk:
        rc, out, _err = run([ctk, "--version"])
        ctk_version = toolkit.ctk_version(out) if rc == 0 else None
        if params["cdi_list"]:
            rc, out, err = run([ctk, "cdi", "list"])
            # The list goes to stdout, its log line to stderr (both, depending on the release).
            devices = toolkit.cdi_devices(out + "\n" + err) if rc == 0 else None
    return {
        "family": family,
        "packages": dict((n, versions.get(n)) for n in params["packages"]),
        "held": [n for n in held if n in params["packages"]],
        "ctk_version": ctk_version,
        "binaries": dict((b, os.access(sysfs._path(root, b), os.X_OK)) for b in params["binaries"]),
        "files": dict((f, toolkit.file_state(f, root)) for f in params["files"]),
        "services": host.service_states(params["services"], run),
        "driver": sysfs.loaded_driver(root),
        "cdi": {"devices": devices},
        "dev_char": toolkit.dev_char_links(root),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            binaries=dict(type="list", elements="path", default=[]),
            files=dict(type="list", elements="path", default=[]),
            services=dict(type="list", elements="str", default=[]),
            ctk=dict(type="path", default="/usr/bin/nvidia-ctk"),
            cdi_list=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **gather(module.params, make_runner(module)))


if __name__ == "__main__":
    main()
