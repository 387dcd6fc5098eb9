#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: k8s_render
short_description: Write Kubernetes objects to a directory with a kustomization, for Argo CD and Flux
version_added: "0.1.0"
description:
  - The render mode of the Kubernetes roles - instead of applying the objects they build to a cluster,
    writes them to O(dest) for a GitOps tool (Argo CD, Flux) or C(kubectl apply -k) to apply.
  - Writes one YAML file per object, named C(<kind in lower case>-<name>.yaml) (characters other than
    letters, digits, C(.), C(_) and C(-) become C(_)). Objects whose names would collide (the same kind
    and name in two namespaces) all get their namespace in front, C(<namespace>-<kind>-<name>.yaml);
    the same object twice is refused.
  - Writes C(kustomization.yaml) (C(kustomize.config.k8s.io/v1beta1) C(Kustomization)) beside them,
    whose C(resources) list the files in the order of O(objects), the order to apply them in.
  - With O(component), the files go to C(<dest>/<component>/) so that several roles share one O(dest),
    and C(<dest>/kustomization.yaml) lists the component directories - each call adds its own to the
    C(resources) there, keeping every other entry and key.
  - Each file starts with a comment line that says this module wrote it; O(prune) removes only such
    C(*.yaml) files, never other files (a C(README.md), a file of the user's).
  - Files are YAML dumped the same way every time (keys in the order given, block style, C(---)
    first) and written atomically (a temporary file in the same directory, then renamed). A file whose
    content and mode are already right is left untouched, so a second run reports no change.
  - Secret objects are written with O(secret_mode), other files with mode 0644; directories the
    module makes get 0750.
  - "The values of C(data) and C(stringData) of Secret objects are never shown - the diff shows, per
    key, C(<masked, unchanged>), C(<masked, changed: old>) and C(<masked, changed: new>),
    C(<masked, added>) or C(<masked, removed>) instead (and says so in its header), and the module's
    own arguments are returned with them masked as C(<masked>)."
  - Needs PyYAML 5.1 or later on the host that runs it (usually the controller, with
    C(delegate_to) V(localhost)), which ansible-core itself requires.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Computes and reports every file that would be written or removed (with a diff), and writes nothing.
  diff_mode:
    support: full
    description: Shows each file written or removed, before and after, Secret data masked.
options:
  objects:
    description:
      - The Kubernetes objects to write, in the order to apply them, each a mapping with C(apiVersion),
        C(kind) and C(metadata.name) (and C(metadata.namespace) for namespaced kinds).
      - An empty list writes a kustomization without resources (and, with O(prune), removes the files
        written earlier).
    type: list
    elements: dict
    required: true
  dest:
    description:
      - The directory to write to, an absolute path; made (mode 0750) when missing.
      - It is typically a checkout of the repository the GitOps tool watches.
    type: path
    required: true
  component:
    description:
      - A directory under O(dest) for these objects (for example V(device-plugin)), a single path
        segment of letters, digits, C(.), C(_) and C(-).
      - Unset, the files and C(kustomization.yaml) go to O(dest) itself.
    type: str
  secret_mode:
    description: The mode of the files of Secret objects, in octal (other files get 0644).
    type: str
    default: "0600"
  prune:
    description:
      - Remove the C(*.yaml) files in the directory written to (O(dest), or its O(component)
        directory) that this module wrote earlier and that are no longer in O(objects).
      - Files the module did not write, and every file that does not end in C(.yaml), are never removed.
    type: bool
    default: true
notes:
  - Several hosts rendering into the same O(dest) at once would race on C(<dest>/kustomization.yaml);
    render once (C(run_once) or C(delegate_to) V(localhost) with one host).
  - When O(component) adds its directory to an existing C(<dest>/kustomization.yaml), that file is
    written again from its parsed content, so its comments are lost; a file that already lists the
    component is left as it is.
seealso:
  - name: Kustomization
    description: The kustomization file's fields.
    link: https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/
"""

EXAMPLES = r"""
- name: Render the device plugin's objects for Argo CD instead of applying them
  gpunode.nvidia.k8s_render:
    objects: "{{ _device_plugin_objects }}"
    dest: /srv/gitops/gpu-cluster
    component: device-plugin
  delegate_to: localhost
  run_once: true
  register: __device_plugin_render

- name: Write two objects to a directory of their own, keeping files written earlier
  gpunode.nvidia.k8s_render:
    objects:
      - apiVersion: v1
        kind: Namespace
        metadata:
          name: gpu-operator
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: device-plugin-config
          namespace: gpu-operator
        data:
          config.yaml: |
            version: v1
    dest: /srv/gitops/gpu-namespace
    prune: false
  delegate_to: localhost
"""

RETURN = r"""
files:
  description:
    - Every file the module wrote or found already right, objects first in the order given, then the
      kustomization files (in check mode, those it would write).
  returned: always
  type: list
  elements: str
  sample:
    - /srv/gitops/gpu-cluster/device-plugin/daemonset-nvidia-device-plugin.yaml
    - /srv/gitops/gpu-cluster/device-plugin/kustomization.yaml
    - /srv/gitops/gpu-cluster/kustomization.yaml
changed_files:
  description: The files of RV(files) whose content or mode changed (in check mode, would change).
  returned: always
  type: list
  elements: str
  sample: [/srv/gitops/gpu-cluster/device-plugin/daemonset-nvidia-device-plugin.yaml]
removed_files:
  description: The files O(prune) removed (in check mode, would remove), sorted.
  returned: always
  type: list
  elements: str
  sample: [/srv/gitops/gpu-cluster/device-plugin/configmap-old-config.yaml]
directory:
  description: The directory the objects were written to, O(dest) or its O(component) directory.
  returned: always
  type: str
  sample: /srv/gitops/gpu-cluster/device-plugin
"""

import copy
import os
import re
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible.module_utils.common.text.converters import to_native
from ansible_collections.gpunode.nvidia.plugins.module_utils import secret_mask

try:
    import yaml
except ImportError:
    yaml = None

MARKER = "# Written by gpunode.nvidia.k8s_render: changes made here are overwritten.\n"
KUSTOMIZATION = "kustomization.yaml"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
FILE_MODE = 0o644
DIR_MODE = 0o750
MASKED = "<masked>"
SECRET_FIELDS = ("data", "stringData")
COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


class RenderError(Exception):
    pass


def check_objects(objects):
    """One line per object that is no Kubernetes object, each naming its index."""
    problems = []
    for index, obj in enumerate(objects):
        where = "objects[%d]" % index
        if not isinstance(obj, dict):
            problems.append("%s is not a mapping" % where)
            continue
        for key in ("apiVersion", "kind"):
            if not isinstance(obj.get(key), str) or not obj.get(key):
                problems.append("%s has no %s" % (where, key))
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
            problems.append("%s%s has no metadata.name" % (where, " (kind %s)" % obj["kind"] if isinstance(obj.get("kind"), str) else ""))
        elif "namespace" in meta and (not isinstance(meta["namespace"], str) or not meta["namespace"]):
            problems.append("%s (%s %s) has a metadata.namespace that is not a name" % (where, obj.get("kind"), meta["name"]))
    return problems


def describe(obj):
    meta = obj["metadata"]
    return "%s %s" % (obj["kind"], "%s/%s" % (meta["namespace"], meta["name"]) if meta.get("namespace") else meta["name"])


def file_names(objects):
    """The file name of each object: <kind>-<name>.yaml, with <namespace>- in front where names collide."""
    plain = ["%s-%s.yaml" % (obj["kind"].lower(), UNSAFE_RE.sub("_", obj["metadata"]["name"])) for obj in objects]
    names = []
    for index, obj in enumerate(objects):
        if plain.count(plain[index]) > 1:
            namespace = obj["metadata"].get("namespace") or "cluster"
            names.append("%s-%s" % (UNSAFE_RE.sub("_", namespace), plain[index]))
        else:
            names.append(plain[index])
    for index, name in enumerate(names):
        first = names.index(name)
        if first != index:
            raise RenderError("objects[%d] (%s) and objects[%d] (%s) would both be written to %s: the same object twice?"
                              % (first, describe(objects[first]), index, describe(objects[index]), name))
    return names


def dump(data, marker=True):
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, explicit_start=True)
    return (MARKER if marker else "") + text


def is_secret(obj):
    return isinstance(obj, dict) and obj.get("kind") == "Secret"


def masked(obj, other=None, side="after"):
    """A copy of a Secret with each value of data and stringData masked; other objects as they are.

    With ``other`` (the same file's Secret on the other side of a diff), each mask says whether that
    key's value is unchanged, changed, added or removed (secret_mask's words), nothing more.
    """
    if not is_secret(obj):
        return obj
    obj = copy.deepcopy(obj)
    other = other if is_secret(other) else None
    for field in SECRET_FIELDS:
        if isinstance(obj.get(field), dict):
            theirs = (other or {}).get(field)
            theirs = theirs if isinstance(theirs, dict) else {}
            obj[field] = dict((key, _mask(value, theirs, key, other is not None, side)) for key, value in obj[field].items())
        elif field in obj:
            obj[field] = MASKED
    return obj


def _mask(value, theirs, key, compared, side):
    if not compared:
        return MASKED
    if key not in theirs:
        word = secret_mask.ADDED if side == "after" else secret_mask.REMOVED
    elif theirs[key] == value:
        word = secret_mask.UNCHANGED
    else:
        word = secret_mask.CHANGED_NEW if side == "after" else secret_mask.CHANGED_OLD
    return word.strip('"')


def _docs(text):
    """The YAML documents of a file's text, or None when it is not YAML."""
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return None


def masked_text(text, other_text=None, side="before"):
    """``text`` (a file's content) for a diff: Secrets in it masked. Returns (text, masked?).

    ``other_text``: the other side of the diff, so each Secret value says whether it changed.
    """
    if text is None:
        return "", False
    docs = _docs(text)
    if docs is None:
        return "<not shown: the file is not YAML, and could hold a Secret>\n", True
    if not any(is_secret(doc) for doc in docs):
        return text, False
    others = (_docs(other_text) or []) if other_text is not None else []
    marker = text.startswith(MARKER)
    return "".join(dump(masked(doc, others[i] if i < len(others) else None, side) if other_text is not None else masked(doc),
                        marker=marker and i == 0) for i, doc in enumerate(docs)), True


def read(path):
    """(content bytes, mode) of a regular file, (None, None) when there is none."""
    try:
        info = os.lstat(path)
    except OSError:
        return None, None
    if not stat.S_ISREG(info.st_mode):
        raise RenderError("%s exists and is not a regular file" % path)
    with open(path, "rb") as handle:
        return handle.read(), stat.S_IMODE(info.st_mode)


def written_by_us(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MARKER.encode("utf-8"))) == MARKER.encode("utf-8")
    except OSError:
        return False


def missing_dirs(path):
    """The directories to make for ``path`` to exist, outermost first."""
    missing = []
    while not os.path.isdir(path):
        if os.path.lexists(path):
            raise RenderError("%s exists and is not a directory" % path)
        missing.insert(0, path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def write_atomic(path, data, mode):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class File(object):
    def __init__(self, path, text, mode, *, secret=False, keep_mode=False, shown=None):
        self.path = path
        self.data = text.encode("utf-8")
        self.text = text
        self.shown = shown if shown is not None else text  # what the diff shows (Secret data masked)
        self.secret = secret
        self.before, self.before_mode = read(path)
        self.mode = self.before_mode if keep_mode and self.before_mode is not None else mode
        self.content_changed = self.before != self.data
        self.mode_changed = not self.content_changed and self.before_mode != self.mode

    @property
    def changed(self):
        return self.content_changed or self.mode_changed

    def diffs(self):
        if self.content_changed:
            before_text = None if self.before is None else self.before.decode("utf-8", "replace")
            before, before_masked = masked_text(before_text, self.text)
            after = self.shown
            if self.secret and before_text is not None:
                after = masked_text(self.text, before_text, side="after")[0]
            note = " (Secret data masked)" if self.secret or before_masked else ""
            yield {
                "before_header": "%s%s" % (self.path, " (absent)" if self.before is None else note),
                "after_header": "%s%s" % (self.path, note),
                "before": before,
                "after": after,
            }
        elif self.mode_changed:
            yield {
                "before_header": self.path,
                "after_header": self.path,
                "before": {"path": self.path, "mode": "%04o" % self.before_mode},
                "after": {"path": self.path, "mode": "%04o" % self.mode},
            }


def top_kustomization(path, component):
    """The File for <dest>/kustomization.yaml with ``component`` in its resources, or None when it lists it already."""
    before, _mode = read(path)
    if before is None:
        data, marker = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": [component]}, True
    else:
        try:
            data = yaml.safe_load(before.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RenderError("%s is not YAML: %s" % (path, to_native(exc))) from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise RenderError("%s is not a kustomization (a mapping)" % path)
        resources = data.get("resources", [])
        if not isinstance(resources, list):
            raise RenderError("%s: resources is not a list" % path)
        if component in [re.sub(r"^\./|/$", "", str(entry)) for entry in resources]:
            return None
        data = dict(data)
        data["resources"] = resources + [component]
        marker = before.startswith(MARKER.encode("utf-8"))
    text = dump(data, marker=marker)
    return File(path, text, FILE_MODE, keep_mode=True)


def plan(objects, dest, component, secret_mode, prune):
    """(directories to make, files, stale files to remove)."""
    directory = os.path.join(dest, component) if component else dest
    dirs = missing_dirs(directory)
    names = file_names(objects)
    files = []
    for obj, name in zip(objects, names):
        secret = is_secret(obj)
        text = dump(obj)
        files.append(File(os.path.join(directory, name), text, secret_mode if secret else FILE_MODE, secret=secret,
                          shown=dump(masked(obj)) if secret else None))
    kustomization = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": names}
    files.append(File(os.path.join(directory, KUSTOMIZATION), dump(kustomization), FILE_MODE))
    if component:
        top = top_kustomization(os.path.join(dest, KUSTOMIZATION), component)
        if top is not None:
            files.append(top)
        else:
            files.append(File(os.path.join(dest, KUSTOMIZATION), read(os.path.join(dest, KUSTOMIZATION))[0].decode("utf-8", "replace"),
                              FILE_MODE, keep_mode=True))
    stale = []
    if prune and os.path.isdir(directory):
        keep = set(names) | {KUSTOMIZATION}
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.endswith(".yaml") and name not in keep and os.path.isfile(path) and not os.path.islink(path) and written_by_us(path):
                stale.append(path)
    return dirs, files, stale


def masked_params(params):
    params = dict(params)
    if isinstance(params.get("objects"), list):
        params["objects"] = [masked(obj) for obj in params["objects"]]
    return params


def main():
    module = AnsibleModule(
        argument_spec=dict(
            objects=dict(type="list", elements="dict", required=True),
            dest=dict(type="path", required=True),
            component=dict(type="str"),
            secret_mode=dict(type="str", default="0600", no_log=False),  # a file mode, not a secret
            prune=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    # The arguments go back in the result (with -v): never with a Secret's data.
    invocation = {"module_args": masked_params(module.params)}

    def fail(msg, **kwargs):
        module.fail_json(msg=msg, invocation=invocation, **kwargs)

    if yaml is None:
        fail(missing_required_lib("PyYAML", reason="to write the objects as YAML"))
    dest, component = module.params["dest"], module.params["component"]
    if not os.path.isabs(dest):
        fail("dest must be an absolute path, got %r" % dest)
    dest = os.path.normpath(dest)
    if component is not None and (not COMPONENT_RE.match(component) or component in (".", "..")):
        fail("component must be one directory name (letters, digits, '.', '_', '-'), got %r" % component)
    if not re.match(r"^0?[0-7]{3}$", module.params["secret_mode"]):
        fail("secret_mode must be an octal mode such as 0600, got %r" % module.params["secret_mode"])
    secret_mode = int(module.params["secret_mode"], 8)
    objects = module.params["objects"]
    problems = check_objects(objects)
    if problems:
        fail("not Kubernetes objects (each needs apiVersion, kind and metadata.name): %s" % "; ".join(problems))

    try:
        dirs, files, stale = plan(objects, dest, component, secret_mode, module.params["prune"])
    except (RenderError, OSError) as exc:
        fail(to_native(exc))
    changed = bool(dirs or stale or any(f.changed for f in files))
    result = dict(
        changed=changed,
        files=[f.path for f in files],
        changed_files=[f.path for f in files if f.changed],
        removed_files=stale,
        directory=os.path.join(dest, component) if component else dest,
    )
    if module._diff and changed:
        diff = [{"before_header": d, "after_header": d, "before": {"path": d, "state": "absent"},
                 "after": {"path": d, "state": "directory", "mode": "%04o" % DIR_MODE}} for d in dirs]
        for f in files:
            diff.extend(f.diffs())
        for path in stale:
            before, _masked = masked_text(read(path)[0].decode("utf-8", "replace"))
            diff.append({"before_header": path, "after_header": "%s (removed)" % path, "before": before, "after": ""})
        result["diff"] = diff
    if changed and not module.check_mode:
        try:
            for d in dirs:
                os.mkdir(d, DIR_MODE)
                os.chmod(d, DIR_MODE)  # whatever the umask
            # Objects first, the kustomizations last: they never name a file not written yet.
            for f in files:
                if f.content_changed:
                    write_atomic(f.path, f.data, f.mode)
                elif f.mode_changed:
                    os.chmod(f.path, f.mode)
            for path in stale:
                os.unlink(path)
        except OSError as exc:
            fail("cannot write to %s: %s" % (result["directory"], to_native(exc)), **result)
    module.exit_json(invocation=invocation, **result)


if __name__ == "__main__":
    main()
