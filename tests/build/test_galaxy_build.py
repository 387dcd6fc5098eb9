"""The collection builds with ansible-galaxy, installs, and documents every module and role."""

import os
import subprocess
import tarfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "plugins", "modules")) if f.endswith(".py"))
ROLES = sorted(os.listdir(os.path.join(ROOT, "roles")))


def run(*argv, **env):
    proc = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, ANSIBLE_NOCOLOR="1", **env), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    run("ansible-galaxy", "collection", "build", "--force", "--output-path", str(out))
    tarball = out / "gpunode-nvidia-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert "plugins/modules/preflight_facts.py" in names
    assert not [n for n in names if n.startswith((".venv", ".cache", ".lab", "lab/"))]
    dest = tmp_path_factory.mktemp("collections")
    # --no-deps: the dependencies come from the venv's `ansible` package (Galaxy is unreachable here).
    run("ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(dest), str(tarball))
    return str(dest)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_for_every_module(installed, module):
    out = run("ansible-doc", "gpunode.nvidia." + module, ANSIBLE_COLLECTIONS_PATH=installed)
    assert "gpunode.nvidia.%s" % module in out and "EXAMPLES" in out and "RETURN VALUES" in out


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_for_every_role(installed, role):
    out = run("ansible-doc", "-t", "role", "gpunode.nvidia." + role, ANSIBLE_COLLECTIONS_PATH=installed)
    # ansible-doc marks names with *...* when colour is off.
    assert "ENTRY POINT: *main*" in out
    assert "\n- %s_" % role in out  # its options are listed
