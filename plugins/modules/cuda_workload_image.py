#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: cuda_workload_image
short_description: Make the CUDA workload's container image on the node, from the node's own files, and import it into containerd
version_added: "0.2.0"
description:
  - Makes the image gpunode.nvidia.cuda_workload runs through the NVIDIA container runtime, with no registry;
    it runs the workload's imports once under the interpreter that has cuda-bindings and packs exactly the files
    that process loaded (the Python binary, the standard-library modules, cuda.bindings and cuda.pathfinder,
    the shared libraries it mapped) at their paths, plus the workload script, into a one-layer OCI image,
    and imports it with C(ctr images import). No file of the NVIDIA driver goes in (C(libcuda*), C(libnvidia-*));
    the runtime has to inject them.
  - The tag is a digest of the contents. An image already in containerd is left alone (no change), a new
    interpreter, binding or workload makes a new tag and the older tags of O(name) are removed.
  - In check mode, reports whether it would import, and imports nothing.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
requirements:
  - cuda-bindings (C(import cuda.bindings.driver)) in one of the interpreters tried
  - C(ctr) (containerd)
attributes:
  check_mode:
    support: full
    description: Reports whether it would import the image, and imports nothing.
  diff_mode:
    support: none
    description: An image has no text to show.
options:
  name:
    description: The image's name in containerd, without the tag.
    type: str
    default: gpunode.local/gpunode/cuda-workload
  namespace:
    description: The containerd namespace to import into.
    type: str
    default: gpunode-validate
  python_interpreters:
    description:
      - Interpreters to try, in order, for one that imports C(cuda.bindings.driver); the image is made from the first.
      - The gpunode.nvidia.driver role publishes its venv's interpreter as C(gpunode_driver.nvml_python).
    type: list
    elements: path
    default: []
  workdir:
    description: Where the archive is written while it is imported (removed afterwards).
    type: path
    default: /var/tmp
"""

EXAMPLES = r"""
- name: Make the workload image
  gpunode.nvidia.cuda_workload_image:
    python_interpreters: ["{{ gpunode_driver.nvml_python }}"]
  register: cuda_image

- name: Run the workload through the runtime
  gpunode.nvidia.cuda_workload:
    host: false
    container:
      image: "{{ cuda_image.image }}"
      command: "{{ cuda_image.command }}"
"""

RETURN = r"""
image:
  description: The image's reference in containerd.
  returned: success
  type: str
  sample: gpunode.local/gpunode/cuda-workload:3f2a9c0d41b7e655
command:
  description: The workload's command in the image.
  returned: success
  type: list
  elements: str
python:
  description: The interpreter the image was made from (on the node).
  returned: success
  type: str
files:
  description: How many files and links the image holds.
  returned: success
  type: int
size_bytes:
  description: The layer's size; null when the image was already imported.
  returned: success
  type: int
present:
  description: Whether the image is in containerd now (in check mode, whether it already was), so that it can run.
  returned: success
  type: bool
removed:
  description: Older tags of O(name) removed (in check mode, those that would be).
  returned: success
  type: list
  elements: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload, interpreters, workload_image as oci


def _find_python(module):
    """(interpreter, the directories its binding is imported from) of the first that has cuda-bindings, or (None, None); and those tried."""
    tried = []
    for python in list(module.params["python_interpreters"]) + list(interpreters.DEFAULT_INTERPRETERS):
        if python in tried or not os.path.exists(python):
            continue
        tried.append(python)
        rc, out, _err = module.run_command([python, "-c", oci.SITE], environ_update=oci.PROBE_ENV)
        if rc == 0 and out.strip():
            return python, out.strip().splitlines()[-1], tried
    return None, None, tried


def _closure(module, python, sites, source):
    """CLOSURE's report, run under ``python`` beside a copy of the workload script."""
    workdir = tempfile.mkdtemp(prefix="gpunode-cuda-")
    try:
        path = os.path.join(workdir, "cuda_workload.py")
        with open(path, "w") as handle:
            handle.write(source)
        rc, out, err = module.run_command([python, "-S", "-B", "-c", oci.CLOSURE, workdir, sites], environ_update=oci.PROBE_ENV)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if rc != 0 or not lines:
            module.fail_json(msg="could not list the workload's files under %s (rc %d): %s" % (python, rc, (err or out).strip()[-500:]))
        report = json.loads(lines[-1])
        if "error" in report:
            module.fail_json(msg="%s cannot import the binding without site (from %s): %s" % (python, sites, report["error"]))
        report["probe"] = path
        return report
    finally:
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


def _ctr(module, *args):
    return module.run_command(["ctr", "--namespace", module.params["namespace"]] + list(args))


def _import(module, entries, script, result):
    """Write the archive of result's image in the workdir, import it, remove it; the layer's size."""
    layer = oci.layer(entries, oci.workload_files(script))
    handle, path = tempfile.mkstemp(prefix="gpunode-cuda-image-", suffix=".tar", dir=module.params["workdir"])
    try:
        with os.fdopen(handle, "wb") as archive:
            archive.write(oci.archive(layer, result["image"], result["command"]))
        rc, out, err = _ctr(module, "images", "import", path)
        if rc != 0:
            module.fail_json(msg="ctr images import of the workload image failed: %s" % (err or out).strip(), **result)
    finally:
        os.unlink(path)
    return len(layer)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", default="gpunode.local/gpunode/cuda-workload"),
            namespace=dict(type="str", default="gpunode-validate"),
            python_interpreters=dict(type="list", elements="path", default=[]),
            workdir=dict(type="path", default="/var/tmp"),
        ),
        supports_check_mode=True,
    )
    name = module.params["name"]
    if ":" in name.rsplit("/", 1)[-1] or "@" in name:
        module.fail_json(msg="name is the image's name without a tag or digest (the module sets the tag), not %r" % name)
    if not module.get_bin_path("ctr"):
        module.fail_json(msg="ctr is not installed: install containerd (the gpunode.nvidia.containerd role), or set validate_cuda_container: false")
    python, sites, tried = _find_python(module)
    if python is None:
        module.fail_json(msg="%s. None of %s has it. The gpunode.nvidia.driver role installs it (driver_cuda_bindings_package)."
                         % (missing_required_lib("cuda-bindings (import cuda.bindings.driver)", reason="to make the CUDA workload image",
                                                 url="https://pypi.org/project/cuda-bindings/"), ", ".join(tried) or "the interpreters"),
                         interpreters_tried=tried)
    source = workload.__loader__.get_source(workload.__name__)
    script = source.encode("utf-8")
    report = _closure(module, python, sites, source)
    entries = oci.layout(oci.closure_files(report, report["probe"]), report["executable"])
    reference = "%s:%s" % (name, oci.content_key(entries, script)[:16])
    command = oci.command(report["executable"], report["site"])
    result = {"changed": False, "image": reference, "command": command, "python": python, "files": len(entries), "size_bytes": None,
              "present": False, "removed": []}

    rc, out, err = _ctr(module, "images", "ls", "--quiet")
    if rc != 0:
        module.fail_json(msg="ctr images ls failed (is containerd running?): %s" % (err or out).strip(), **result)
    listed = [line.strip() for line in out.splitlines() if line.strip()]
    stale = [ref for ref in listed if ref.startswith(name + ":") and ref != reference]
    result["present"] = reference in listed
    if module.check_mode:
        result["changed"] = not result["present"] or bool(stale)
        result["removed"] = stale
        module.exit_json(**result)
    if not result["present"]:
        result["size_bytes"] = _import(module, entries, script, result)
        result["present"] = result["changed"] = True
    for ref in stale:
        rc, out, err = _ctr(module, "images", "rm", ref)
        if rc != 0:
            module.fail_json(msg="ctr images rm %s (an older workload image) failed: %s" % (ref, (err or out).strip()), **result)
        result["removed"].append(ref)
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
