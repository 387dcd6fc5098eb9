"""The driver role's real data, inputs and preflight facts, for the driver tests.

Inputs are built from roles/driver/defaults/main.yml exactly as vars/main.yml
maps them; facts come from preflight_facts.gather() over the host trees in
hosts.py (GPU hosts written from the notes) and the recorded lab nodes.
"""

import os
import re

import yaml

from ansible_collections.gpunode.nvidia.plugins.modules import preflight_facts

from .utils import FakeRun

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROLE = os.path.join(ROOT, "roles", "driver")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def load(*parts):
    with open(os.path.join(*parts)) as handle:
        return yaml.safe_load(handle)


def os_data(os_id, family):
    """(_driver_os, _driver_family) as the role loads them: family file, then the distribution's."""
    data = dict(load(ROLE, "vars", family + ".yml"))
    own = os.path.join(ROLE, "vars", os_id.title() + ".yml")
    if os_id.title() != family and os.path.exists(own):
        data.update(load(own))
    return data["_driver_os"], data["_driver_family"]


def inputs(**overrides):
    """The planner's inputs from the role defaults, as vars/main.yml builds them."""
    defaults = load(ROLE, "defaults", "main.yml")
    mapping = load(ROLE, "vars", "main.yml")["_driver_inputs"]
    result = {}
    for key, expr in mapping.items():
        # The first public variable the expression reads (kernel_release also maps "packaged").
        name = re.search(r"\bdriver_[a-z_]+", expr).group(0)
        result[key] = defaults[name]
    result["nvml_python"] = defaults["driver_nvml_venv"] + "/bin/python3"
    result["branch"] = str(result["branch"])
    result.update(overrides)
    return result


def gather(tree_writer, tmp_path, kernel=None, run=None):
    root = str(tree_writer(tmp_path))
    params = {"kernel_release": kernel, "packages": [], "services": [], "files": []}
    return preflight_facts.gather(root, params, run or FakeRun(), lambda p: None)


def lab_facts(release, tmp_path):
    """A lab node (recorded bookworm tree) as Debian 12 or 13: no GPU, podman, VM kernel."""
    root = os.path.join(FIXTURES, "hosts", "lab-node-bookworm")
    facts = preflight_facts.gather(root, {"kernel_release": None, "packages": [], "services": [], "files": []}, FakeRun(), lambda p: None)
    facts["os"].update({"version": release, "major_version": release, "name": "Debian GNU/Linux %s" % release})
    facts["kernel"].update({"running": "6.18.44-fc-v657", "target": "6.18.44-fc-v657"})
    facts["virtualization"] = {"container": "podman", "vm": None}
    return facts


def with_gpus(facts, *device_ids):
    """facts with these NVIDIA GPUs (PCI device ids) on the bus instead of its own."""
    devices = [{"address": "0000:%02x:00.0" % (i + 1), "vendor": "0x10de", "device": dev, "class": "0x030200"} for i, dev in enumerate(device_ids)]
    result = dict(facts)
    result["gpus"] = {"count": len(devices), "devices": devices}
    return result
