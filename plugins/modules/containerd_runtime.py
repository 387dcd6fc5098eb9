#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: containerd_runtime
short_description: Register a runtime such as NVIDIA's in containerd 1.6, 1.7 and 2.x without losing a setting
version_added: "0.1.0"
description:
  - Adds (O(state=present)) or removes (O(state=absent)) a runtime in containerd's CRI configuration
    through a drop-in file, and makes sure the top-level C(imports) of the main configuration names
    it, keeping every import already there. Creates a main configuration when there is none.
  - The config version (1, 2 or 3) comes from the main file itself (no C(version) key means 1, no
    file or an empty one gets 2, or 3 for containerd 2.x), never from C(containerd config dump); the
    drop-in carries the same version and the CRI plugin of that version (C(cri),
    C(io.containerd.grpc.v1.cri) or C(io.containerd.cri.v1.runtime)).
  - The drop-in is computed from the main file and the imports loaded before it with the merge rules
    of the containerd installed. Before containerd 2.1 an imported file replaces each plugin table
    it names as a whole, so there the drop-in carries the complete CRI plugin table of those files
    (and the built-in runtimes from C(containerd config default) when the files define none);
    from 2.1 on it carries only what this module sets. The result is checked by merging all files
    again, so an import loaded later that would undo the runtime stops the module.
  - The new runtime inherits the table and options of the default runtime (else C(runc), else
    C(crun)), as C(nvidia-ctk runtime configure) does, so C(SystemdCgroup) follows the node's. A
    default runtime whose name starts with C(nvidia), or the runtime itself, is not inherited from.
    An empty or missing C(runtime_type) counts as C(io.containerd.runc.v2), as it does for
    containerd and nvidia-ctk 1.20.0, so a C(runc) table written with C(runtime_type = "") still
    passes its options on. A runtime of another shim than O(runtime_type) passes nothing on. The
    module warns when there is no runtime to inherit from.
  - A runtime of the same name already defined keeps its own table; the inherited options fill
    the options it lacks, and O(binary_name), O(runtime_type) and O(default_runtime_options) are set over it.
  - A drop-in at O(dropin_path) that C(nvidia-ctk runtime configure) or the GPU Operator's toolkit
    container wrote (it has only C(version) and CRI plugin tables, and defines the runtime O(name))
    is taken over, with a warning - every setting it made stays in effect (it counts as loaded before
    the new drop-in), and its text is kept in the new drop-in's record. If the main file did not
    import it, none of its settings were in effect and none are revived. A drop-in of another config
    version than the main file is refused. Any other file there is refused.
  - O(state=absent) removes exactly what O(state=present) added (the drop-in, the imports entry,
    and the lines or file it created), so the main file is restored byte for byte. A drop-in that
    was taken over is put back as the earlier tool wrote it, so the runtimes, default runtime and CDI
    setting it made stay registered (the node works as it did before the module ran); the module
    warns, and deleting that file removes them. O(state=absent) leaves a drop-in of those tools that
    was never taken over as it is.
  - Malformed TOML, an unknown config version or a layout that cannot work fail with a message that
    says what to do, and change nothing. Writes are atomic; the main file is backed up when edited.
  - k3s and RKE2 rewrite their containerd configuration from a template at every start; the module
    refuses to edit those files and says what to do instead.
  - Needs no library beyond the Python standard library (3.6 or later). It carries its own TOML
    reader and writer, since Python has no TOML writer and no reader before 3.11.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Computes and reports the change (with a diff) without writing.
  diff_mode:
    support: full
    description:
      - Shows the change to the main configuration and to the drop-in.
      - >-
        Secret values are masked (registry passwords, C(auth) strings, tokens, C(Authorization) headers, the value of
        any key named like a password, token, secret, credential, API key or private key, in comments too). The key
        stays and its value reads V(<masked, unchanged>), V(<masked, changed: old>) before and V(<masked, changed: new>)
        after, V(<masked, added>) or V(<masked, removed>); nothing of the secret is shown. The headers of a diff with
        masked values say so.
options:
  state:
    description: Whether the runtime is registered.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Runtime name, the handler a Kubernetes RuntimeClass refers to.
    type: str
    default: nvidia
  binary_name:
    description:
      - C(BinaryName) option of the runtime, the OCI runtime the runc shim calls.
      - An empty string keeps the value inherited from the default runtime.
      - The file need not exist yet (the container toolkit may come later); the result reports
        C(binary_exists). Making a missing binary the default runtime fails, since every container
        would then fail.
    type: str
    default: /usr/bin/nvidia-container-runtime
  runtime_type:
    description: Shim of the runtime. Options are inherited from the default runtime only when its shim is the same.
    type: str
    default: io.containerd.runc.v2
  set_as_default:
    description: Make this runtime the CRI default (C(default_runtime_name)).
    type: bool
    default: false
  enable_cdi:
    description:
      - Turn on CDI device injection in the CRI plugin (C(enable_cdi)); needs containerd 1.7 or later.
      - When false, CDI settings are left as they are.
    type: bool
    default: false
  cdi_if_supported:
    description:
      - With O(enable_cdi), turn CDI on only where containerd supports it (1.7 and later) and leave it off with a
        warning on containerd 1.6, instead of failing. For callers that enable CDI wherever it exists (the
        containerd role does when the toolkit publishes CDI).
    type: bool
    default: false
  cdi_spec_dirs:
    description: CDI spec directories to set with O(enable_cdi); left as they are when omitted.
    type: list
    elements: path
  default_runtime_options:
    description:
      - Options to set on the default runtime (usually runc) before the new runtime inherits them,
        such as V(SystemdCgroup=true) on nodes that use the systemd cgroup driver.
      - They live in the drop-in too, so O(state=absent) takes them back.
    type: dict
    default: {}
  config_path:
    description: containerd's main configuration file.
    type: path
    default: /etc/containerd/config.toml
  dropin_path:
    description: The drop-in file this module owns. One drop-in per runtime.
    type: path
    default: /etc/containerd/conf.d/99-nvidia.toml
  backup:
    description: Keep a timestamped copy of the main configuration when it is edited.
    type: bool
    default: true
  containerd_binary:
    description:
      - containerd's executable (name or path), asked for its version, its built-in defaults, and
        for C(config dump) to check the result.
      - When it is missing, the rules safe for every containerd release are used and nothing is checked.
    type: str
    default: containerd
  plugin_merge:
    description:
      - How the containerd that reads the files merges plugin tables of imported files.
      - V(auto) asks the binary (C(replace) before 2.1 or when unknown, C(deep) from 2.1).
    type: str
    choices: [auto, replace, deep]
    default: auto
  verify:
    description:
      - After a change (and on every run without one), load the configuration with
        C(containerd --config <config_path> config dump) and check the runtime is there with its
        C(BinaryName). If a change does not show, the files are restored and the module fails.
      - Skipped in check mode while a change is pending, and when the binary is missing.
    type: bool
    default: true
notes:
  - Restart containerd after a change (the role does it through a handler); C(config dump) reads the
    files, so the check does not need the daemon.
  - Before containerd 2.1 the drop-in holds a copy of the CRI plugin table. A later edit of that
    table in the main file is hidden by the copy until the module runs again; run it after every
    change of the main file (config managers that rewrite config.toml should run before it).
  - The drop-in gets the main file's permissions, since it may copy registry credentials. Those stay out of what the
    module returns - the diff masks them, and RV(runtime) and RV(effective) show the
    value of a key named like a secret as V(<masked>).
seealso:
  - name: containerd configuration
    description: containerd's config.toml(5), imports and config versions.
    link: https://github.com/containerd/containerd/blob/main/docs/man/containerd-config.toml.5.md
"""

EXAMPLES = r"""
- name: Register the NVIDIA runtime, with runc on the systemd cgroup driver
  gpunode.nvidia.containerd_runtime:
    default_runtime_options:
      SystemdCgroup: true
  notify: Restart containerd

- name: Make it the default runtime and turn on CDI
  gpunode.nvidia.containerd_runtime:
    set_as_default: true
    enable_cdi: true
    cdi_spec_dirs: [/etc/cdi, /var/run/cdi]

- name: A second runtime in its own drop-in
  gpunode.nvidia.containerd_runtime:
    name: nvidia-cdi
    binary_name: /usr/bin/nvidia-container-runtime.cdi
    dropin_path: /etc/containerd/conf.d/99-nvidia-cdi.toml

- name: Take the runtime away again, restoring config.toml as it was
  gpunode.nvidia.containerd_runtime:
    state: absent
"""

RETURN = r"""
cdi_left_off:
  description: Why CDI was left off with O(cdi_if_supported) (containerd 1.6), else null.
  returned: always
  type: str
config_path:
  description: The main configuration file.
  returned: always
  type: str
  sample: /etc/containerd/config.toml
dropin_path:
  description: The drop-in file.
  returned: always
  type: str
  sample: /etc/containerd/conf.d/99-nvidia.toml
config_version:
  description: Config version of the main file (and the drop-in); null when absent left no file.
  returned: always
  type: int
  sample: 2
plugin_id:
  description: CRI plugin that holds the runtimes for that version.
  returned: when state is present
  type: str
  sample: io.containerd.grpc.v1.cri
plugin_merge:
  description: Merge rule used for imported plugin tables, C(replace) or C(deep).
  returned: when state is present
  type: str
containerd_version:
  description: The containerd release found, null when no binary was found.
  returned: always
  type: str
  sample: 1.7.24
imports:
  description: Top-level imports of the main file afterwards.
  returned: always
  type: list
  elements: str
runtime:
  description: The runtime table written to the drop-in.
  returned: when state is present
  type: dict
  sample: {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": true, "BinaryName": "/usr/bin/nvidia-container-runtime"}}
binary_exists:
  description: Whether O(binary_name) exists on the node (null when O(binary_name) is empty).
  returned: always
  type: bool
effective:
  description:
    - What C(containerd config dump) shows, when checked - C(runtime) (the runtime's table or null),
      C(runtimes) (names), C(default_runtime_name), C(enable_cdi), C(cdi_spec_dirs), C(config_version), C(plugin_id).
  returned: when the configuration was checked with the binary
  type: dict
dropin_mode:
  description:
    - The mode the drop-in was given because it was more readable than the main file, whose registry
      credentials it may copy (the stricter of the two).
  returned: when the drop-in's mode was tightened
  type: str
  sample: "0600"
backup_file:
  description: Copy of the main configuration made before editing it.
  returned: when a backup was made
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_config as cc
from ansible_collections.gpunode.nvidia.plugins.module_utils import containerd_dropin
from ansible_collections.gpunode.nvidia.plugins.module_utils import files
from ansible_collections.gpunode.nvidia.plugins.module_utils import secret_mask
from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw
from ansible_collections.gpunode.nvidia.plugins.module_utils.runner import make_runner

RANCHER_SERVICES = {"k3s": "k3s (or k3s-agent)", "RKE2": "rke2-server (or rke2-agent)"}
RANCHER_ADVICE = (
    "%(name)s writes its containerd configuration from config.toml.tmpl (config-v3.toml.tmpl with containerd 2.x) in "
    "%(dir)s at every start, so edits to config.toml there are lost. %(name)s adds an 'nvidia' runtime by itself when it "
    "finds nvidia-container-runtime at start: install the NVIDIA container toolkit, restart %(service)s, and use its "
    "--default-runtime option to make it the default. For other settings, extend the template ({{ template \"base\" . }} "
    "plus your tables)."
)


class Runner(object):
    """containerd's executable, asked for its version, its defaults and a dump."""

    def __init__(self, module, binary):
        self.binary = binary
        self._run = make_runner(module)
        self._defaults = None

    def run(self, *args):
        return self._run([self.binary] + list(args))

    def version(self):
        rc, out, _err = self.run("--version")
        return cc.parse_version_output(out) if rc == 0 else None

    def defaults(self):
        """`containerd config default`, parsed; None when it cannot be had."""
        if self._defaults is None:
            rc, out, _err = self.run("config", "default")
            try:
                self._defaults = toml_rw.loads(out) if rc == 0 else {}
            except toml_rw.TomlError:
                self._defaults = {}
        return self._defaults or None


def check_rancher(module, params, binary):
    for name, directory, inside in cc.rancher_containerd(params["config_path"]):
        facts = {"name": name, "dir": directory, "service": RANCHER_SERVICES[name]}
        if inside:
            module.fail_json(msg=("%s is managed by %s. " % (params["config_path"], name)) + RANCHER_ADVICE % facts)
        if binary is None:
            module.fail_json(
                msg=("This node runs %s's own containerd and has no system containerd, so %s is not read by the "
                     "containerd in use. " % (name, params["config_path"])) + RANCHER_ADVICE % facts
            )
        module.warn(
            "this node has a system containerd and %s's own (%s): this module configures the system one through %s; "
            "pods run by %s use the other." % (name, directory, params["config_path"], name)
        )


def put(module, path, text, mode):
    """Make ``path`` hold ``text`` (None: no file)."""
    if text is None:
        if os.path.lexists(path):
            os.unlink(path)
    else:
        files.write_atomic(module, path, text, mode)


def apply(module, plan, params, result):
    config_path, dropin_path = params["config_path"], params["dropin_path"]
    main_mode = os.stat(config_path).st_mode & 0o777 if os.path.exists(config_path) else 0o644
    if plan.main_changed and plan.main_before is not None and params["backup"]:
        result["backup_file"] = files.backup_atomic(config_path)
    # Never let config.toml import a file that is not there: containerd 1.x would not start.
    if params["state"] == "present":
        put(module, dropin_path, plan.dropin_after, main_mode)
        put(module, config_path, plan.main_after, main_mode)
    else:
        put(module, config_path, plan.main_after, main_mode)
        put(module, dropin_path, plan.dropin_after, main_mode)


def dropin_mode_fix(params, plan):
    """(current, wanted) mode of a drop-in that stays and is more readable than config.toml, else None.

    Before containerd 2.1 the drop-in carries a copy of the CRI table, registry credentials included,
    so it is never left more readable than the file it copies from (a config.toml made 0600 later).
    """
    config_path, dropin_path = params["config_path"], params["dropin_path"]
    if plan.dropin_after is None or not os.path.exists(dropin_path) or not os.path.exists(config_path):
        return None
    current = os.stat(dropin_path).st_mode & 0o777
    wanted = current & (os.stat(config_path).st_mode & 0o777)
    return (current, wanted) if wanted != current else None


def file_modes(params):
    """Permissions of both files before any write, for restore()."""
    modes = {}
    for key in ("config_path", "dropin_path"):
        path = params[key]
        modes[path] = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    return modes


def restore(module, plan, params, modes):
    """Put both files back as they were read."""
    for path, text in ((params["config_path"], plan.main_before), (params["dropin_path"], plan.dropin_before)):
        put(module, path, text, modes[path])
        if text is not None:
            os.chmod(path, modes[path])


def check_effective(runner, params):
    """(effective dict or None, list of problems) from `containerd config dump`."""
    if not os.path.exists(params["config_path"]):
        # state=absent removed a config.toml it had created: containerd runs on its defaults.
        return None, []
    rc, out, err = runner.run("--config", params["config_path"], "config", "dump")
    if rc != 0:
        last = (err.strip().splitlines() or ["rc %d" % rc])[-1]
        return None, ["containerd cannot load the configuration: %s" % secret_mask.mask_text(last)]
    try:
        effective = secret_mask.mask_data(cc.effective_runtime(out, params["name"]))
    except (toml_rw.TomlError, cc.ConfigError) as exc:
        return None, ["cannot read `containerd config dump`: %s" % to_native(exc)]
    problems = []
    if params["state"] == "absent":
        return effective, problems
    runtime = effective["runtime"]
    if runtime is None:
        return effective, ["runtime %s is not in containerd's effective configuration" % params["name"]]
    options = runtime.get("options") or {}
    if params["binary_name"] and options.get("BinaryName") != params["binary_name"]:
        problems.append("BinaryName is %r, not %r" % (options.get("BinaryName"), params["binary_name"]))
    if runtime.get("runtime_type") != params["runtime_type"]:
        problems.append("runtime_type is %r" % runtime.get("runtime_type"))
    if params["set_as_default"] and effective["default_runtime_name"] != params["name"]:
        problems.append("default_runtime_name is %r" % effective["default_runtime_name"])
    return effective, problems


def diffs(plan, params):
    """Ansible's diffs of both files, secret values masked (config.toml, and the drop-in's copy of the CRI table, may hold registry credentials)."""
    out = []
    for path, before, after in (
        (params["config_path"], plan.main_before, plan.main_after),
        (params["dropin_path"], plan.dropin_before, plan.dropin_after),
    ):
        if before != after:
            masked_before, masked_after, count = secret_mask.mask_diff(before, after)
            note = secret_mask.NOTE if count else ""
            out.append({
                "before_header": (path if before is not None else "%s (absent)" % path) + note,
                "after_header": (path if after is not None else "%s (absent)" % path) + note,
                "before": masked_before or "",
                "after": masked_after or "",
            })
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            name=dict(type="str", default="nvidia"),
            binary_name=dict(type="str", default="/usr/bin/nvidia-container-runtime"),
            runtime_type=dict(type="str", default=cc.RUNC_SHIM),
            set_as_default=dict(type="bool", default=False),
            enable_cdi=dict(type="bool", default=False),
            cdi_if_supported=dict(type="bool", default=False),
            cdi_spec_dirs=dict(type="list", elements="path"),
            default_runtime_options=dict(type="dict", default={}),
            config_path=dict(type="path", default="/etc/containerd/config.toml"),
            dropin_path=dict(type="path", default="/etc/containerd/conf.d/99-nvidia.toml"),
            backup=dict(type="bool", default=True),
            containerd_binary=dict(type="str", default="containerd"),
            plugin_merge=dict(type="str", choices=["auto", "replace", "deep"], default="auto"),
            verify=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for key in ("config_path", "dropin_path"):
        if not os.path.isabs(params[key]):
            module.fail_json(msg="%s must be an absolute path, got %r" % (key, params[key]))
    if os.path.normpath(params["config_path"]) == os.path.normpath(params["dropin_path"]):
        module.fail_json(msg="dropin_path must differ from config_path")
    if not params["name"] or not params["runtime_type"]:
        module.fail_json(msg="name and runtime_type must not be empty")
    if params["cdi_spec_dirs"] is not None and not params["enable_cdi"]:
        module.fail_json(msg="cdi_spec_dirs is set only together with enable_cdi: true")
    params["config_path"] = os.path.normpath(params["config_path"])
    params["dropin_path"] = os.path.normpath(params["dropin_path"])

    binary = module.get_bin_path(params["containerd_binary"], opt_dirs=["/usr/bin", "/usr/local/bin", "/usr/sbin", "/sbin"])
    check_rancher(module, params, binary)
    runner = Runner(module, binary) if binary else None
    version = runner.version() if runner else None
    cdi_left_off = None
    if params["enable_cdi"] and params["cdi_if_supported"] and version is not None and tuple(version) < (1, 7):
        cdi_left_off = "containerd %s has no CDI (it came in containerd 1.7): CDI left off" % ".".join(str(p) for p in version)
        params["enable_cdi"] = False
        params["cdi_spec_dirs"] = None
    binary_exists = os.path.exists(params["binary_name"]) if params["binary_name"] else None
    if params["state"] == "present" and params["set_as_default"] and binary_exists is False:
        module.fail_json(
            msg="refusing to make %s the default runtime: its binary %s does not exist, so every container would fail. "
                "Install the NVIDIA container toolkit first." % (params["name"], params["binary_name"])
        )

    try:
        main_text = cc.read_text(params["config_path"])
        dropin_text = cc.read_text(params["dropin_path"])
        if params["state"] == "present":
            semantics = cc.Semantics(version, params["plugin_merge"])
            plan = containerd_dropin.plan_present(params, main_text, dropin_text, semantics, defaults=runner.defaults if runner else (lambda: None))
        else:
            semantics = None
            plan = containerd_dropin.plan_absent(params, main_text, dropin_text)
    except cc.ConfigError as exc:
        module.fail_json(msg=to_native(exc), config_path=params["config_path"], dropin_path=params["dropin_path"])

    for warning in plan.warnings + ([cdi_left_off] if cdi_left_off else []):
        module.warn(warning)
    result = dict(
        changed=plan.changed,
        config_path=params["config_path"],
        dropin_path=params["dropin_path"],
        config_version=plan.version,
        containerd_version=".".join(str(part) for part in version) if version else None,
        imports=plan.imports,
        binary_exists=binary_exists,
        cdi_left_off=cdi_left_off,
    )
    if semantics is not None:
        result.update(plugin_id=plan.plugin_id, plugin_merge=plan.plugin_merge, runtime=secret_mask.mask_data(plan.runtime))
    if module._diff and plan.changed:
        result["diff"] = diffs(plan, params)
    mode_fix = dropin_mode_fix(params, plan)
    if mode_fix:
        result["changed"] = True
        result["dropin_mode"] = "%04o" % mode_fix[1]
        if module._diff:
            result.setdefault("diff", []).append({
                "before_header": params["dropin_path"], "after_header": params["dropin_path"],
                "before": {"path": params["dropin_path"], "mode": "%04o" % mode_fix[0]},
                "after": {"path": params["dropin_path"], "mode": "%04o" % mode_fix[1]}})

    wrote = False
    modes = file_modes(params)
    if plan.changed and not module.check_mode:
        try:
            apply(module, plan, params, result)
        except OSError as exc:
            restore(module, plan, params, modes)
            module.fail_json(msg="cannot write the configuration: %s; the files were restored" % to_native(exc), **result)
        wrote = True
    if mode_fix and not module.check_mode:
        os.chmod(params["dropin_path"], mode_fix[1])

    if params["verify"] and runner and not (module.check_mode and plan.changed):
        effective, problems = check_effective(runner, params)
        result["effective"] = effective
        if problems:
            if wrote:
                restore(module, plan, params, modes)
                result["changed"] = False
            module.fail_json(
                msg="containerd's effective configuration is not right%s: %s"
                    % (" (the files were restored)" if wrote else "", "; ".join(problems)),
                **result
            )
    elif params["verify"] and not runner:
        module.warn("%s not found: the effective configuration was not checked" % params["containerd_binary"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
