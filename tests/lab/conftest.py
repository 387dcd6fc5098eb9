"""Lab tests: real podman nodes from the lab images, driven by ansible-playbook.

They need root, podman and the images from `lab/lab.sh build` (scripts/test.sh
provides all three). Each test creates its own containers, named lab-test-*, and
removes them.
"""

import functools
import os
import shutil
import subprocess
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE_PREFIX = os.environ.get("LAB_IMAGE_PREFIX", "localhost/gpunode-lab")
# Lines the fault-injection test (test_faults.py) leaves for the end of the run's output.
FAULT_SUMMARY = []


def pytest_terminal_summary(terminalreporter):
    for line in FAULT_SUMMARY:
        terminalreporter.write_line(line)


def podman(*args, check=True):
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


@pytest.fixture(scope="session", autouse=True)
def _lab_ready():
    if shutil.which("podman") is None or os.geteuid() != 0:
        pytest.fail("lab tests need root and podman: run them through scripts/test.sh")
    if podman("image", "exists", IMAGE_PREFIX + "-bookworm", check=False).returncode != 0:
        pytest.fail("lab images missing: run lab/lab.sh build")


class Nodes:
    """Containers made by one test, removed at its end."""

    def __init__(self):
        self.names = []

    def start(self, flavour, *run_args, command=("/lib/systemd/systemd",), systemd=True):
        name = "lab-test-%s" % uuid.uuid4().hex[:8]
        # As lab/lab.sh starts nodes: /var/lib/containerd on a volume for nested containers.
        extra = ["--systemd=always", "--privileged", "--volume", "/var/lib/containerd"] if systemd else []
        podman("run", "-d", "--name", name, "--hostname", name, *extra, *run_args,
               IMAGE_PREFIX + "-" + flavour, *command)
        self.names.append(name)
        if systemd:
            podman("exec", name, "systemctl", "is-system-running", "--wait", check=False)
        return name

    def exec(self, name, *cmd):
        return podman("exec", name, *cmd).stdout

    def remove(self):
        if self.names:
            podman("rm", "-f", "-t", "0", "-v", *self.names, check=False)


@pytest.fixture
def nodes():
    made = Nodes()
    yield made
    made.remove()


def lab(*args, env=None, check=True):
    """Run lab/lab.sh with the given arguments and environment additions."""
    return subprocess.run(["bash", os.path.join(ROOT, "lab", "lab.sh"), *args], check=check, cwd=ROOT,
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True)


@functools.lru_cache(maxsize=None)
def lab_vars():
    """The variables every lab node needs (lab/lab.sh vars: the one place), as YAML lines."""
    return [line for line in lab("vars").stdout.splitlines() if line.strip()]


def run_playbook(inventory, *args):
    """ansible-playbook with this checkout's config against an inventory file."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(["ansible-playbook", "-i", str(inventory), *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True)


def playbook(inventory_hosts, tmp_path, *args):
    """Run ansible-playbook on the given podman hosts; return the completed process."""
    inv = tmp_path / "inventory.yml"
    lines = ["gpu_nodes:", "  vars:", "    ansible_connection: containers.podman.podman",
             "    ansible_python_interpreter: /usr/bin/python3"]
    lines += ["    " + line for line in lab_vars()]
    lines += ["  hosts:"] + ["    %s:" % h for h in inventory_hosts]
    inv.write_text("\n".join(lines) + "\n")
    return run_playbook(inv, *args)
