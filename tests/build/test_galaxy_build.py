"""The collection builds with ansible-galaxy, installs, documents every module and role, and
makes an execution environment's build context with ansible-builder."""

import os
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "plugins", "modules")) if f.endswith(".py"))
ROLES = sorted(os.listdir(os.path.join(ROOT, "roles")))


def run(*argv, **env):
    proc = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, ANSIBLE_NOCOLOR="1", **env), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def version():
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)["version"]


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    run("ansible-galaxy", "collection", "build", "--force", "--output-path", str(out))
    return out / ("gpunode-nvidia-%s.tar.gz" % version())


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tarball):
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


def test_the_execution_environment_definition_makes_a_build_context(tarball, tmp_path):
    """ansible-builder create on execution-environment/ (as the README says: the tarball beside the
    definition): the Containerfile has the pinned base, ansible-core and the collection's tarball.
    No image is built: no container registry can be reached here."""
    ee = tmp_path / "ee"
    shutil.copytree(os.path.join(ROOT, "execution-environment"), str(ee))
    shutil.copy(str(tarball), str(ee))
    run("ansible-builder", "create", "-f", str(ee / "execution-environment.yml"), "-c", str(ee / "context"))
    containerfile = (ee / "context" / "Containerfile").read_text()
    with open(os.path.join(ROOT, "requirements", "controller.txt")) as handle:
        core = re.search(r"^ansible-core==\S+", handle.read(), re.M).group(0)
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile, containerfile
    assert core in containerfile and "ansible-runner==" in containerfile, containerfile
    assert (ee / "context" / "_build" / "collections" / tarball.name).is_file()
    # requirements.yml installs that same tarball (WORKDIR /build holds _build's files).
    requirements = yaml.safe_load((ee / "context" / "_build" / "requirements.yml").read_text())
    assert {"name": "/build/collections/" + tarball.name, "type": "file"} in requirements["collections"]
    assert "ansible-galaxy collection install" in containerfile and "requirements.yml" in containerfile, containerfile


def test_ansible_builder_reads_the_collections_own_requirements(installed):
    """What ansible-builder adds to an EE for this collection (its introspect, run on the installed copy)."""
    out = run("ansible-builder", "introspect", installed)
    found = yaml.safe_load(out)
    ours = "  # from collection gpunode.nvidia"
    # PyYAML is not listed: ansible-builder leaves out what ansible-core itself requires.
    assert found["python"] == ["kubernetes>=24.2.0" + ours], out
    assert found["system"] == ["openssh-clients [platform:rpm]" + ours, "openssh-client [platform:dpkg]" + ours], out
