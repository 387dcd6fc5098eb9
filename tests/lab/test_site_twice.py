"""The README's main command, as written, on a lab of the test's own (2x Debian 12 + 1x Debian 13,
real DKMS builds), run as root on a machine without sudo; then site.yml again on the same nodes
changes nothing, and neither does --check --diff."""

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


@pytest.fixture
def own_lab(tmp_path):
    """The environment that gives a command a lab of this test's own; its nodes go at the end."""
    env = {"LAB_NAME_PREFIX": "lab-site-%s" % uuid.uuid4().hex[:6], "LAB_STATE": str(tmp_path / "lab"),
           "LAB_NODES": NODES}
    yield env
    lab("down", env=env, check=False)


@pytest.fixture
def no_sudo(tmp_path):
    """A PATH whose first `sudo` fails loudly and leaves a mark: root must not need it."""
    shim = tmp_path / "shim"
    shim.mkdir()
    mark = tmp_path / "sudo-was-called"
    (shim / "sudo").write_text('#!/bin/sh\necho "sudo called ($*): root must not need it" >&2\n'
                               'echo "$*" >>%s\nexit 97\n' % mark)
    (shim / "sudo").chmod(0o755)
    return str(shim) + os.pathsep + os.environ["PATH"], mark


def test_readme_main_command_then_site_changes_nothing(own_lab, no_sudo):
    command = readme_commands()[0]
    assert "lab-site.sh" in command, command  # the main job, as the README writes it
    path, sudo_mark = no_sudo
    env = dict(os.environ, PATH=path, **own_lab)
    for name in ("VIRTUAL_ENV", "ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH"):
        env.pop(name, None)  # as in a fresh root shell: the script sets up its own
    main = subprocess.run(command, check=False, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)
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
    # Check mode with --diff reads the same nodes and reports the same, changing nothing.
    check = run_playbook(inventory, "playbooks/site.yml", "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    for host in hosts:
        assert recap(check.stdout, host)["changed"] == 0, (host, recap(check.stdout, host))
