"""The oldest Python each file must run on, checked statically with vermin (the lab runs only
Debian's 3.11 and 3.13): what runs on nodes (modules, module_utils) on 3.6, EL8's
platform-python; what runs on the controller (action, filter, plugin_utils) on 3.10, the
oldest Python of the oldest ansible-core line supported (2.16)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")
NODE = ["plugins/modules", "plugins/module_utils"]
CONTROLLER = ["plugins/action", "plugins/filter", "plugins/plugin_utils", "plugins/doc_fragments"]


def vermin(target, *paths):
    proc = subprocess.run([VERMIN, "-t=%s-" % target, "--violations", "--no-tips", "--no-parse-comments", *paths],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize(("target", "paths"), [("3.6", NODE), ("3.10", CONTROLLER)], ids=["node-3.6", "controller-3.10"])
def test_files_run_on_their_oldest_python(target, paths):
    for path in paths:
        assert any(name.endswith(".py") for name in os.listdir(os.path.join(ROOT, path))), path
    rc, out = vermin(target, *paths)
    assert rc == 0, out


def test_probe_scripts_run_on_their_oldest_python(tmp_path):
    # Python text the modules hand to another interpreter: the NVML probe to the node's (EL 8's 3.6), the
    # workload image's probes to the one with cuda-bindings (3.9 and up, checked here at 3.6 all the same).
    sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))
    from ansible_collections.gpunode.nvidia.plugins.module_utils import driver, workload_image  # noqa: PLC0415

    for name, text in (("nvml_probe", driver._NVML_PROBE), ("closure", workload_image.CLOSURE), ("site", workload_image.SITE)):
        (tmp_path / (name + ".py")).write_text(text)
    rc, out = vermin("3.6", str(tmp_path))
    assert rc == 0, out


def test_the_check_fails_on_a_newer_construct(tmp_path):
    (tmp_path / "newer.py").write_text('value = 1\nprint(f"{value=}")\n')  # 3.8 syntax
    rc, out = vermin("3.6", str(tmp_path))
    assert rc != 0 and "3.8" in out, out
