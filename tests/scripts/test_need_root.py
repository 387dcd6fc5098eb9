"""The entry scripts need root and get there by themselves: started as a user with sudo they
run again as root through it (keeping the variables that choose the lab); without sudo they
say what to do and stop.

Needs root and Debian's sudo package (scripts/test.sh installs it for this test). Each test
makes a throwaway unprivileged user with a NOPASSWD sudoers drop-in, and removes both."""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# A stand-in entry script: the shared start (need_root), then what it runs as.
PROBE = """#!/bin/bash
. %s/scripts/lib.sh
need_root "$@"
echo "uid=$(id -u) sudo_user=${SUDO_USER:-} prefix=${LAB_NAME_PREFIX:-} state=${LAB_STATE:-} nodes=${LAB_NODES:-} args=$*"
""" % ROOT
LAB_VARS = {"LAB_NAME_PREFIX": "lab-sudo", "LAB_STATE": "/tmp/lab-sudo-state", "LAB_NODES": "bookworm:1"}


@pytest.fixture
def sudo_user():
    """An unprivileged user allowed to run anything as root without a password; a folder it can read."""
    if os.geteuid() != 0 or shutil.which("sudo") is None or shutil.which("useradd") is None:
        pytest.fail("needs root, useradd and sudo (scripts/test.sh installs sudo)")
    name = "gpunode-t%s" % uuid.uuid4().hex[:6]
    dropin = "/etc/sudoers.d/%s" % name
    work = tempfile.mkdtemp(prefix="gpunode-sudo-")
    os.chmod(work, 0o755)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", name], check=True)
    try:
        with open(dropin + ".tmp", "w") as handle:
            handle.write("%s ALL=(root) NOPASSWD: ALL\n" % name)
        os.chmod(dropin + ".tmp", 0o440)
        subprocess.run(["visudo", "-c", "-q", "-f", dropin + ".tmp"], check=True)
        os.rename(dropin + ".tmp", dropin)
        yield name, work
    finally:
        for path in (dropin, dropin + ".tmp"):
            if os.path.exists(path):
                os.remove(path)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(work, ignore_errors=True)
    assert not os.path.exists(dropin)
    assert subprocess.run(["id", name], check=False, capture_output=True).returncode != 0


def as_user(name, argv, env):
    return subprocess.run(["runuser", "-u", name, "--", "env", *("%s=%s" % kv for kv in env.items()), *argv],
                          check=False, cwd=ROOT, capture_output=True, text=True)


def probe(work):
    path = os.path.join(work, "entry.sh")
    with open(path, "w") as handle:
        handle.write(PROBE)
    os.chmod(path, 0o755)
    return path


def test_a_user_with_sudo_runs_the_entry_script_again_as_root(sudo_user):
    name, work = sudo_user
    run = as_user(name, [probe(work), "--one", "two"], dict(LAB_VARS, PATH=os.environ["PATH"]))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "entry.sh: not root: running it again as root through sudo" in run.stderr
    assert ("uid=0 sudo_user=%s prefix=lab-sudo state=/tmp/lab-sudo-state nodes=bookworm:1 args=--one two"
            % name) in run.stdout, out


def test_scripts_setup_sh_as_a_user_with_sudo(sudo_user):
    # A real entry script: setup.sh is idempotent and quick where everything is in place.
    name, unused = sudo_user
    run = as_user(name, ["scripts/setup.sh"], {"PATH": os.environ["PATH"]})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "setup.sh: not root: running it again as root through sudo" in run.stderr
    assert "controller ready" in run.stdout, out  # past need_root: it ran as root


def test_without_sudo_the_script_says_what_to_do(sudo_user):
    name, work = sudo_user
    bin_dir = os.path.join(work, "bin")  # a PATH with what the probe needs, and no sudo
    os.mkdir(bin_dir)
    for tool in ("bash", "id"):
        os.symlink(shutil.which(tool), os.path.join(bin_dir, tool))
    run = as_user(name, [probe(work)], {"PATH": bin_dir})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "uid=" not in run.stdout
    assert "entry.sh needs root (the lab's nodes are privileged containers), and this machine has no sudo" \
        in run.stderr, run.stderr
    assert "run it from a root shell" in run.stderr
