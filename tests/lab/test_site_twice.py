"""The README's main command, as written, on a lab of this module's own (2x Debian 12 + 1x Debian 13,
real DKMS builds), run as root on a machine without sudo; then site.yml again on the same nodes
changes nothing, --check --diff neither, and a registry password planted on one node never leaves
containerd's files (docs/secrets.md)."""

import json
import os
import re
import subprocess
import uuid

import pytest

from .conftest import ROOT, lab, run_playbook
from .test_preflight_refusals import recap

NODES = "bookworm:2,trixie:1"


def readme_commands():
    """The commands of the README's "## The two commands" block, without their comments."""
    with open(os.path.join(ROOT, "README.md")) as readme:
        text = readme.read()
    section = text.split("\n## The two commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```\n(.*?)^```$", section, re.M | re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def lab_hosts(prefix, spec):
    return ["%s-%s-%d" % (prefix, flavour, i)
            for flavour, count in (item.split(":") for item in spec.split(","))
            for i in range(1, int(count) + 1)]


@pytest.fixture(scope="module")
def own_lab(tmp_path_factory):
    """The environment that gives a command a lab of this module's own; its nodes go at the end."""
    env = {"LAB_NAME_PREFIX": "lab-site-%s" % uuid.uuid4().hex[:6], "LAB_STATE": str(tmp_path_factory.mktemp("lab")),
           "LAB_NODES": NODES}
    yield env
    lab("down", env=env, check=False)


@pytest.fixture(scope="module")
def no_sudo(tmp_path_factory):
    """A PATH whose first `sudo` fails loudly and leaves a mark: root must not need it."""
    shim = tmp_path_factory.mktemp("shim")
    mark = shim / "sudo-was-called"
    (shim / "sudo").write_text('#!/bin/sh\necho "sudo called ($*): root must not need it" >&2\n'
                               'echo "$*" >>%s\nexit 97\n' % mark)
    (shim / "sudo").chmod(0o755)
    return str(shim) + os.pathsep + os.environ["PATH"], mark


@pytest.fixture(scope="module")
def main_run(own_lab, no_sudo):
    """The README's main command, as written, once for this module's tests (real DKMS builds)."""
    command = readme_commands()[0]
    assert "lab-site.sh" in command, command  # the main job, as the README writes it
    path, sudo_mark = no_sudo
    env = dict(os.environ, PATH=path, **own_lab)
    for name in ("VIRTUAL_ENV", "ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH"):
        env.pop(name, None)  # as in a fresh root shell: the script sets up its own
    return subprocess.run(command, check=False, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)


def test_readme_main_command_then_site_changes_nothing(own_lab, no_sudo, main_run):
    _path, sudo_mark = no_sudo
    main = main_run
    out = main.stdout + main.stderr
    assert main.returncode == 0, out
    assert not sudo_mark.exists(), sudo_mark.read_text()
    hosts = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)
    # It ends with the run report: the last play, one line per node, then the recap.
    last_play = out[out.rindex("\nPLAY ["):]
    assert last_play.startswith("\nPLAY [Report every node of the run]"), last_play[:200]
    tail = last_play[last_play.index("TASK [Print one line per GPU node]"):last_play.index("PLAY RECAP")]
    for host in hosts:
        assert re.search(r"%s\s+debian 1[23] " % host, tail), tail
        assert recap(out, host)["failed"] == 0
        # The toolkit (the lab mirror's test-double packages) at the role's default pin, and the
        # runtime containerd registered, its binary there.
        assert re.search(r"%s\s.* 1\.20\.0-1 +1\.[67]\.\d+ \(nvidia\) +ok" % host, tail), tail

    # No driver_version was given (the lab sets none): the driver role resolved one, and
    # validate's driver stage checked exactly the version installed on each node.
    assert "driver_version" not in lab("vars", env=own_lab).stdout
    for host in hosts:
        installed = subprocess.run(["podman", "exec", host, "dpkg-query", "-W", "-f", "${Version}", "nvidia-kernel-dkms"],
                                   check=True, capture_output=True, text=True).stdout.split("-")[0]
        with open(os.path.join(ROOT, "playbooks", "validate-reports", host + ".json")) as handle:
            driver = [s for s in json.load(handle)["stages"] if s["stage"] == "driver"][0]
        assert driver["details"]["expected"]["driver_version"] == installed, (host, driver["details"])
        assert driver["details"]["expected"]["driver_branch"] == installed.split(".")[0]

    inventory = lab("inventory", env=own_lab).stdout.strip()
    second = run_playbook(inventory, "playbooks/site.yml")
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    for host in hosts:
        stats = recap(out, host)
        assert stats["changed"] == 0 and stats["failed"] == 0, (host, stats)
    # --check --diff on these converged nodes: test_a_registry_password_never_leaves_containerd_files.


# A unique token planted as a registry password in one node's config.toml (mode 0600, as a user keeps
# a file with credentials): no byte the collection prints or writes on the controller may hold it, and
# on the node only containerd's own files may - config.toml, the drop-in (on containerd < 2.1 it carries
# a copy of the CRI table, so the credentials) and the backups - each mode 0600. The other nodes stay
# as converged: the same check run shows that check mode reports no change there.
TOKEN = "gpunode-canary-%s" % uuid.uuid4().hex
AUTH_TABLE = '\n[plugins."%s".registry.configs."canary.registry.invalid".auth]\n  username = "canary"\n  password = "%s"\n'
# Where files are written on a node (the journal is containerd's own log: docs/secrets.md).
NODE_DIRS = ("/etc", "/root", "/tmp", "/var/tmp", "/var/backups", "/var/lib/gpunode", "/var/log/apt", "/usr/local")
MAY_HOLD = re.compile(r"^/etc/containerd/(config\.toml(\.\d+\.[^/]*~)?|conf\.d/99-nvidia\.toml)$")


def node(host, *cmd):
    return subprocess.run(["podman", "exec", host, *cmd], check=False, capture_output=True, text=True)


def test_a_registry_password_never_leaves_containerd_files(own_lab, main_run):
    assert main_run.returncode == 0, main_run.stdout[-3000:]
    hosts = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)
    planted = hosts[1]  # a Debian 12 node: containerd 1.6, whose drop-in copies the CRI table
    config = node(planted, "cat", "/etc/containerd/config.toml").stdout
    plugin = "io.containerd.cri.v1.images" if re.search(r"^version\s*=\s*3", config, re.M) else "io.containerd.grpc.v1.cri"
    added = subprocess.run(["podman", "exec", "-i", planted, "sh", "-c", "cat >>/etc/containerd/config.toml && chmod 0600 /etc/containerd/config.toml"],
                           input=AUTH_TABLE % (plugin, TOKEN), check=False, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    inventory = lab("inventory", env=own_lab).stdout.strip()

    check = run_playbook(inventory, "playbooks/site.yml", "--check", "--diff")
    real = run_playbook(inventory, "playbooks/site.yml", "--diff", "-vvv")
    outputs = {"--check --diff": check.stdout + check.stderr, "--diff -vvv": real.stdout + real.stderr}
    assert check.returncode == 0, outputs["--check --diff"][-5000:]
    assert real.returncode == 0, outputs["--diff -vvv"][-5000:]
    for name, out in outputs.items():
        assert TOKEN not in out, (name, [line for line in out.splitlines() if TOKEN in line][:3])
        # The diff still says which secret is there, masked.
        assert "secret values masked" in out and 'password = "<masked, ' in out, name
        # It ends with the run report all the same.
        assert "TASK [Print one line per GPU node]" in out[out.rindex("\nPLAY ["):], name
    for host in hosts:
        # Converged nodes: check mode with --diff reads them and reports no change; so does the real run.
        # The planted node: the drop-in (its copy of the CRI table, mode 0600 now) and containerd's restart.
        for name, out in outputs.items():
            stats = recap(out, host)
            assert stats["failed"] == 0 and (stats["changed"] > 0) == (host == planted), (name, host, stats)

    # The controller: reports, the lab's state, anything under the checkout.
    found = subprocess.run(["grep", "-rlF", "--exclude-dir=.git", "--exclude-dir=.venv", "--exclude-dir=.cache", TOKEN, ROOT,
                            own_lab["LAB_STATE"], os.path.expanduser("~/.ansible")], check=False, capture_output=True, text=True)
    assert found.stdout.split() == [], found.stdout

    holders = node(planted, "grep", "-rlF", TOKEN, *NODE_DIRS).stdout.split()
    assert "/etc/containerd/conf.d/99-nvidia.toml" in holders and all(MAY_HOLD.match(path) for path in holders), holders
    for path in holders:
        assert node(planted, "stat", "-c", "%a", path).stdout.strip() == "600", path
    # The password is still in effect: containerd loads it.
    assert TOKEN in node(planted, "containerd", "config", "dump").stdout
