"""The real respawn: the module runs under a Python without pynvml and re-runs itself
under one that has it (this venv's), through ansible itself on localhost.

No GPU and no libnvidia-ml are here, so the respawned module gets as far as
NVML's own "library not found": that answer (and not "binding missing") is
the proof that it ran under the second interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

from ...conftest import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"


def system_python_lacks_pynvml():
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.call([SYSTEM_PYTHON, "-c", "import pynvml"], stderr=subprocess.DEVNULL) != 0


pytestmark = pytest.mark.skipif(not system_python_lacks_pynvml(), reason="needs a %s without pynvml" % SYSTEM_PYTHON)


def adhoc(module, args):
    # The collections path as given (the controller matrix adds the main venv's collections to
    # it, where ansible.posix, the json callback's home, is).
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".cache", "collections"))
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=" + SYSTEM_PYTHON, "-m", module, "-a", json.dumps(args)],
        env=env, capture_output=True, check=False, cwd=ROOT,
    )
    data = json.loads(out.stdout.decode())
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_respawns_under_the_interpreter_given():
    result = adhoc("gpunode.nvidia.nvml_info", {"python_interpreters": [sys.executable]})
    assert result["failed"] is True
    assert result["nvml_error"] == "LIBRARY_NOT_FOUND", result


def test_fails_with_missing_required_lib_when_none_has_it():
    result = adhoc("gpunode.nvidia.nvml_check", {"python_interpreters": ["/nonexistent/bin/python3"]})
    assert result["nvml_error"] == "BINDING_MISSING"
    assert result["msg"].startswith("1 of 1 checks failed: nvml: Failed to import the required Python library (nvidia-ml-py (import pynvml))")
    assert result["interpreters_tried"][0] == "/nonexistent/bin/python3"
