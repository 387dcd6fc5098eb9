#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: toolkit_config
short_description: Set keys of the NVIDIA container toolkit's config.toml, keeping every other setting and comment
version_added: "0.1.0"
description:
  - Sets the keys named in O(settings) in C(/etc/nvidia-container-runtime/config.toml), the file that
    C(nvidia-container-runtime), its hook and C(nvidia-container-cli) read, as C(nvidia-ctk config --in-place --set)
    would, but line by line - every other setting, every comment (the commented-out defaults the package writes
    among them) and the layout stay as they were.
  - A key written as C(key = value) under its C([table]) header gets its value replaced; a missing key is added
    after the last key line of its table (a commented-out C(#key = ...) line stays as it is); a missing table is
    appended as a new section.
  - Malformed TOML, a key written as dotted keys, in an inline table or an array of tables, and a key that holds a
    value of another type fail with a message that names the line, and change nothing.
  - Known keys are checked before anything is read - C(nvidia-container-runtime.mode) must be one of V(auto),
    V(legacy), V(cdi), V(csv), V(jit-cdi); C(nvidia-container-runtime.log-level) one of the levels the runtime
    reads (V(panic), V(fatal), V(error), V(warn), V(warning), V(info), V(debug), V(trace)); booleans
    (C(nvidia-container-cli.no-cgroups), C(nvidia-container-cli.load-kmods), C(accept-nvidia-visible-devices-*),
    every C(features.*) flag, ...) must be booleans; lists such as C(nvidia-container-runtime.runtimes) lists of
    strings. Keys the module does not know (those of later toolkit releases) are written as given.
  - The file is written atomically and keeps its permissions and owner; a timestamped copy is kept when it is edited.
  - Needs no library beyond the Python standard library (3.6 or later).
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
extends_documentation_fragment:
  - gpunode.nvidia.attributes.file_edit
options:
  path:
    description: The toolkit's configuration file.
    type: path
    default: /etc/nvidia-container-runtime/config.toml
  settings:
    description:
      - Keys to set, each a dotted TOML path (table names, then the key) with its value, for example
        V(nvidia-container-runtime.mode), V(nvidia-container-cli.no-cgroups),
        V(features.disable-cuda-compat-lib-hook), V(nvidia-container-runtime.modes.cdi.spec-dirs), or a top-level
        key such as V(accept-nvidia-visible-devices-as-volume-mounts).
      - Values are strings, booleans, numbers or lists of them. The booleans of known keys also take the strings
        Ansible reads as booleans (V(yes), V(false), ...).
      - Keys not listed are left as they are; empty settings only report the file's mode.
    type: dict
    default: {}
  backup:
    description: Keep a timestamped copy of the file, with its permissions, when it is edited.
    type: bool
    default: true
  create:
    description:
      - What to do when the file does not exist. The toolkit package writes it with its defaults, so a missing file
        usually means the toolkit is not installed, and the module fails saying so.
      - V(true) writes a file (mode 0644) that holds only O(settings).
    type: bool
    default: false
notes:
  - The runtime reads the file at every container start, so no restart is needed.
  - The diff masks secret values (keys named C(auth), C(authorization), or like a password, token, secret, credential,
    API key or private key, in comments too), as containerd_runtime does; the key stays, and the value says whether it
    changed. The values of such keys in RV(settings) read V(<masked>).
  - The package's post-install script runs C(nvidia-ctk config --in-place) on upgrades, which rewrites the file in
    its own layout; run this module after toolkit installs and upgrades.
seealso:
  - name: NVIDIA container toolkit configuration
    description: The keys of config.toml and what they do.
    link: https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html
"""

EXAMPLES = r"""
- name: Use CDI for GPU containers, log at info
  gpunode.nvidia.toolkit_config:
    settings:
      nvidia-container-runtime.mode: cdi
      nvidia-container-runtime.log-level: info
  register: __toolkit_config

- name: Rootless containers, and no CUDA compat hook (CVE-2025-23266 mitigation)
  gpunode.nvidia.toolkit_config:
    settings:
      nvidia-container-cli.no-cgroups: true
      features.disable-cuda-compat-lib-hook: true

- name: Only accept GPU requests through volume mounts (the device plugin's volume-mounts strategy)
  gpunode.nvidia.toolkit_config:
    settings:
      accept-nvidia-visible-devices-envvar-when-unprivileged: false
      accept-nvidia-visible-devices-as-volume-mounts: true

- name: Read the mode without changing anything
  gpunode.nvidia.toolkit_config:
  register: __toolkit_mode
"""

RETURN = r"""
config_path:
  description: The configuration file (named so because a C(path) in the result would get that file's C(mode)).
  returned: always
  type: str
  sample: /etc/nvidia-container-runtime/config.toml
settings:
  description:
    - The value of every key of O(settings) in the file after the change (in check mode, the value it would get).
    - The value of a key named like a secret (a password, token, ...) reads V(<masked>).
  returned: always
  type: dict
  sample: {"nvidia-container-runtime.mode": "cdi", "nvidia-container-cli.no-cgroups": false}
changed_keys:
  description: The keys of O(settings) whose value changed (or would change in check mode), sorted.
  returned: always
  type: list
  elements: str
  sample: ["nvidia-container-runtime.mode"]
mode:
  description:
    - The runtime's C(nvidia-container-runtime.mode) after the change, V(auto) when the file does not set it.
    - Tells the caller whether CDI specs must exist on the node - V(cdi) reads them from the spec directories;
      V(auto) resolves to V(jit-cdi) on NVML hosts, which makes them in memory.
  returned: always
  type: str
  sample: cdi
backup_file:
  description: Copy of the file made before editing it.
  returned: when a backup was made
  type: str
  sample: /etc/nvidia-container-runtime/config.toml.4242.2026-12-01@14:25:00~
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpunode.nvidia.plugins.module_utils import toolkit_config as tc
from ansible_collections.gpunode.nvidia.plugins.module_utils.containerd_config import read_text
from ansible_collections.gpunode.nvidia.plugins.module_utils.files import backup_atomic, write_atomic
from ansible_collections.gpunode.nvidia.plugins.module_utils.secret_mask import MASKED, NOTE, is_secret_key, mask_data, mask_diff

CREATED_MODE = 0o644  # what the toolkit package gives the file


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default=tc.DEFAULT_PATH),
            settings=dict(type="dict", default={}),
            backup=dict(type="bool", default=True),
            create=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    if not os.path.isabs(path):
        module.fail_json(msg="path must be an absolute path, got %r" % path)
    path = os.path.normpath(path)
    try:
        items = tc.check_settings(module.params["settings"])
        plan = tc.plan(path, read_text(path), items, create=module.params["create"])
    except tc.ConfigError as exc:
        module.fail_json(msg=to_native(exc), config_path=path)

    for warning in plan.warnings:
        module.warn(warning)
    # Not "path": AnsibleModule would add that file's stat to the result, its mode over ours.
    result = dict(
        changed=plan.changed,
        config_path=path,
        settings=dict((name, MASKED if is_secret_key(name.split(".")[-1]) else mask_data(value)) for name, value in plan.settings.items()),
        changed_keys=sorted(plan.changed_keys),
        mode=plan.mode,
    )
    if module._diff and plan.changed:
        before, after, count = mask_diff(plan.before, plan.after)
        note = NOTE if count else ""
        result["diff"] = {
            "before_header": (path if plan.before is not None else "%s (absent)" % path) + note,
            "after_header": path + note,
            "before": before or "",
            "after": after,
        }
    if plan.changed and not module.check_mode:
        if plan.before is not None and module.params["backup"]:
            result["backup_file"] = backup_atomic(path)
        try:
            write_atomic(module, path, plan.after, CREATED_MODE)
        except OSError as exc:
            module.fail_json(msg="cannot write %s: %s; it was left as it was" % (path, to_native(exc)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
