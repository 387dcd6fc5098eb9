"""Unit-test set-up: make the checkout importable as ansible_collections.gpunode.nvidia."""

import os
import shutil
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")

if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "gpunode", "nvidia", "plugins")):
    raise pytest.UsageError("collection link missing: run scripts/setup.sh first")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


def lay_out_recorded(name, dest):
    """Copy fixtures/hosts/<name> to dest, restoring ':' (stored as %3A) and links (stored as <name>.symlink)."""
    src = os.path.join(FIXTURES, "hosts", name)
    for dirpath, _dirs, files in os.walk(src):
        rel = os.path.relpath(dirpath, src).replace("%3A", ":")
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for f in files:
            source = os.path.join(dirpath, f)
            target = os.path.join(dest, rel, f.replace("%3A", ":"))
            if f.endswith(".symlink"):
                with open(source) as handle:
                    os.symlink(handle.read().strip(), target[: -len(".symlink")])
            else:
                shutil.copyfile(source, target)
    return dest


@pytest.fixture(scope="session")
def lab_vm(tmp_path_factory):
    """This kind of CI VM (Debian 12, no GPU, no /proc/modules), as recorded."""
    return lay_out_recorded("lab-vm-debian12", str(tmp_path_factory.mktemp("lab-vm")))


@pytest.fixture(scope="session")
def lab_node(tmp_path_factory):
    """A Debian 12 lab node (podman, systemd as PID 1), as recorded."""
    return lay_out_recorded("lab-node-bookworm", str(tmp_path_factory.mktemp("lab-node")))
