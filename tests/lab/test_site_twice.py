"""The README's main command, as written, on a lab of this module's own (2x Debian 12 + 1x Debian 13,
real DKMS builds), run as root on a machine without sudo; then site.yml again on the same nodes
changes nothing, --check --diff neither, and a registry password planted on one node never leaves
containerd's files (docs/secrets.md)."""

import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from .conftest import ROOT, lab, run_playbook

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from k8s_api_double import ApiDouble, pod  # noqa: E402  (tests/ is not a package)
from .test_preflight_refusals import recap

NODES = "bookworm:2,trixie:1"


def report_text(out):
    """The run report site.yml printed (its last task, before the recap)."""
    start = out.rindex("TASK [Report the run")
    text = out[out.index("\n", start) + 1:out.index("PLAY RECAP", start)]
    return text[text.index("Run report"):]


def state_of(report):
    """What a run read of each node, without what it changed."""
    return [dict((k, v) for k, v in node.items() if k != "changed") for node in report["nodes"]]


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
    run = subprocess.run(command, check=False, shell=True, cwd=ROOT, env=env, capture_output=True, text=True)
    if run.returncode == 0:
        hosts = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)
        save_driver_image(hosts[0], "bookworm")
        save_driver_image(hosts[-1], "trixie")
    return run


def save_driver_image(host, flavour):
    """A node of each release, its driver just built by DKMS, saved as the image that the controller matrix's legs
    (bookworm) and the molecule scenarios driver (bookworm) and fleet (both) start from (scripts/controllers.sh):
    the build is done once per run."""
    saved = subprocess.run(["bash", "-c", '. scripts/controllers.sh && LEG_FLAVOUR=$1 driver_image_save "$0" "the README main command (test_site_twice)"',
                            host, flavour], cwd=ROOT, check=False, capture_output=True, text=True)
    assert saved.returncode == 0, saved.stdout + saved.stderr


def test_readme_main_command_then_site_changes_nothing(own_lab, no_sudo, main_run):
    _path, sudo_mark = no_sudo
    main = main_run
    out = main.stdout + main.stderr
    assert main.returncode == 0, out
    assert not sudo_mark.exists(), sudo_mark.read_text()
    hosts = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)
    # It ends with the run report, as plain text: the tally first (lab nodes have no GPU), one line
    # per node, then the recap.
    tail = report_text(out)
    assert tail.startswith("Run report: 3 nodes: 3 no GPU\n"), tail
    for host in hosts:
        assert recap(out, host)["failed"] == 0
        # The toolkit (the lab mirror's test-double packages) at the role's default pin, and the
        # runtime containerd registered, its binary there; what this first run changed.
        assert re.search(r"^%s +debian 1[23] +-/0 +\d+\.\d+\.\d+ +1\.20\.0-1 +1\.[67]\.\d+ \(nvidia\) +no GPU"
                         r" +driver, container_toolkit, containerd$" % host, tail, re.M), tail
    assert "Failed:" not in tail and "Failed to import" not in tail
    report = json.loads(open(os.path.join(ROOT, "gpunode-reports", "run-report.json")).read())
    assert [n["host"] for n in report["nodes"]] == hosts and report["tally"] == "3 nodes: 3 no GPU"

    # No driver_version was given (the lab sets none): the driver role resolved one, and
    # validate's driver stage checked exactly the version installed on each node.
    assert "driver_version" not in lab("vars", env=own_lab).stdout
    for host in hosts:
        installed = subprocess.run(["podman", "exec", host, "dpkg-query", "-W", "-f", "${Version}", "nvidia-kernel-dkms"],
                                   check=True, capture_output=True, text=True).stdout.split("-")[0]
        with open(os.path.join(ROOT, "gpunode-reports", host + ".json")) as handle:
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
    check_report = json.loads(open(os.path.join(ROOT, "gpunode-reports", "run-report.json")).read())
    real = run_playbook(inventory, "playbooks/site.yml", "--diff", "-vvv")
    real_report = json.loads(open(os.path.join(ROOT, "gpunode-reports", "run-report.json")).read())
    outputs = {"--check --diff": check.stdout + check.stderr, "--diff -vvv": real.stdout + real.stderr}
    assert check.returncode == 0, outputs["--check --diff"][-5000:]
    assert real.returncode == 0, outputs["--diff -vvv"][-5000:]
    for name, out in outputs.items():
        assert TOKEN not in out, (name, [line for line in out.splitlines() if TOKEN in line][:3])
        # The diff still says which secret is there, masked.
        assert "secret values masked" in out and 'password = "<masked, ' in out, name
        # It ends with the run report all the same.
        assert "Run report" in report_text(out), name
    for host in hosts:
        # Converged nodes: check mode with --diff reads them and reports no change; so does the real run.
        # The planted node: the drop-in (its copy of the CRI table, mode 0600 now) and containerd's restart.
        for name, out in outputs.items():
            stats = recap(out, host)
            assert stats["failed"] == 0 and (stats["changed"] > 0) == (host == planted), (name, host, stats)

    # Check mode reads what a real run reads (the probes run in check mode too): the same report but for
    # what changed, which check mode only predicts (here the planted node's drop-in and containerd).
    assert check_report["check_mode"] is True and real_report["check_mode"] is False
    assert state_of(check_report) == state_of(real_report) and check_report["tally"] == real_report["tally"]
    assert all(n["containerd"] and n["toolkit"] and n["driver"] for n in check_report["nodes"]), check_report["nodes"]
    assert [n["changed"] for n in check_report["nodes"]] == [n["changed"] for n in real_report["nodes"]]
    assert [n["host"] for n in real_report["nodes"] if n["changed"]] == [planted]

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


# The run report under the ways operators run site.yml (--check --diff on a drifted node, --limit to a
# node that fails, an installed collection limited to one node), on the converged nodes above; each run
# writes its report into a directory of its own. --check on the converged fleet: the canary test above.
def site(own_lab, tmp_path, *args):
    inventory = lab("inventory", env=own_lab).stdout.strip()
    result = run_playbook(inventory, "playbooks/site.yml", "-e", "gpunode_report_dir=%s" % tmp_path, *args)
    out = result.stdout + result.stderr
    path = tmp_path / "run-report.json"
    return result.returncode, out, (json.loads(path.read_text()) if path.exists() else None)


def test_check_diff_on_a_drifted_node_shows_the_drift_and_the_report_names_it(own_lab, main_run, tmp_path):
    host = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)[2]  # Debian 13
    # A file the driver role writes is edited too: its fast path for converged nodes must see it.
    blacklist = "/etc/modprobe.d/gpunode-blacklist-nouveau.conf"
    drift = node(host, "sh", "-ec", "sed -i '/^imports *=/d' /etc/containerd/config.toml; systemctl stop containerd; "
                 "echo 'options nouveau modeset=1' >>%s" % blacklist)
    assert drift.returncode == 0, drift.stderr
    rc, out, report = site(own_lab, tmp_path, "--check", "--diff", "--limit", host)
    assert rc == 0, out[-5000:]
    assert re.search(r"^\+imports = ", out, re.M), out[-5000:]  # the drift, in the diff
    assert re.search(r"^-options nouveau modeset=1$", out, re.M), out[-5000:]
    entry = report["nodes"][0]
    assert entry["host"] == host and entry["state"] == "no_gpu" and entry["changed"] == ["driver", "containerd"], entry
    assert "stopped" in entry["containerd"], entry
    # Nothing changed on the node: check mode.
    assert node(host, "systemctl", "is-active", "containerd").stdout.strip() != "active"
    assert "modeset=1" in node(host, "cat", blacklist).stdout
    rc, out, report = site(own_lab, tmp_path, "--limit", host)
    assert rc == 0 and report["nodes"][0]["changed"] == ["driver", "containerd"], out[-3000:]
    assert node(host, "systemctl", "is-active", "containerd").stdout.strip() == "active"
    assert "modeset=1" not in node(host, "cat", blacklist).stdout


def test_limit_to_a_node_that_fails_preflight_reports_it(own_lab, main_run, tmp_path):
    host = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)[1]
    extra = tmp_path / "refuse.yml"
    extra.write_text("gpu_nodes:\n  hosts:\n    %s:\n      preflight_supported_architectures: [aarch64]\n" % host)
    rc, out, report = site(own_lab, tmp_path, "-i", str(extra), "--limit", host)
    assert rc == 2, out[-3000:]
    assert report["tally"] == "1 node: 1 failed: preflight", report
    text = report_text(out)
    assert text.startswith("Run report: 1 node: 1 failed: preflight\n"), text
    assert re.search(r"^  preflight on %s: .*x86_64" % re.escape(host), text, re.M), text
    assert recap(out, host)["failed"] == 1


def test_the_installed_collection_limited_to_one_node_reports_it_and_writes_nothing_inside_itself(own_lab, main_run, tmp_path):
    """The collection built and installed from its tarball, then made read-only (as root, modes alone do not
    stop a write: the proof is that nothing in the installed tree changed), run with --limit to one node:
    the report is that node's, and the reports go where the run is."""
    host = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)[0]
    build = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), ROOT],
                           check=False, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    tarball = next(tmp_path.glob("gpunode-nvidia-*.tar.gz"))
    installed = tmp_path / "collections"
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "--force", "-p", str(installed), str(tarball)],
                   check=True, capture_output=True, text=True)
    tree = installed / "ansible_collections" / "gpunode" / "nvidia"
    assert not list(tree.rglob("*report*.json")), "the tarball carries a run's reports"
    subprocess.run(["chmod", "-R", "a-w", str(tree)], check=True)
    before = sorted((str(p), p.stat().st_mtime_ns) for p in tree.rglob("*"))
    work = tmp_path / "work"
    work.mkdir()
    inventory = lab("inventory", env=own_lab).stdout.strip()
    # Only the installed copy of gpunode.nvidia on the path (containers.podman comes with ansible), no checkout config.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    run = subprocess.run(["ansible-playbook", "-i", inventory, "gpunode.nvidia.site", "--limit", host], check=False,
                         cwd=str(work), env=env, capture_output=True, text=True)
    subprocess.run(["chmod", "-R", "u+w", str(tree)], check=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert recap(out, host)["changed"] == 0
    report = json.loads((work / "gpunode-reports" / "run-report.json").read_text())
    assert [n["host"] for n in report["nodes"]] == [host] and report["tally"] == "1 node: 1 no GPU", report
    assert report_text(out).startswith("Run report: 1 node: 1 no GPU\n"), report_text(out)
    assert (work / "gpunode-reports" / (host + ".json")).exists()
    assert sorted((str(p), p.stat().st_mtime_ns) for p in tree.rglob("*")) == before


def test_batches_stop_at_the_first_failed_one_and_leave_the_later_nodes_untouched(own_lab, main_run, tmp_path):
    """gpunode_serial=1 on the three converged nodes, the second one's config.toml broken: the first batch
    passes, the second fails at containerd (the file refused and left as it was), the third never starts."""
    first, broken, untouched = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)
    config = "/etc/containerd/config.toml"
    assert node(broken, "sh", "-ec", "cp -p %s /root/config.toml.good; echo '[[[not toml' >>%s" % (config, config)).returncode == 0
    try:
        before = node(broken, "sha256sum", config).stdout
        rc, out, report = site(own_lab, tmp_path, "-e", "gpunode_serial=1")
        assert rc == 2, out[-5000:]
        assert node(broken, "sha256sum", config).stdout == before  # refused, left untouched
    finally:
        node(broken, "cp", "-p", "/root/config.toml.good", config)
    assert re.search(r"^Batch done \(%s\); so far 3 nodes: 1 no GPU, 2 not run$" % re.escape(first), out, re.M), out[-5000:]
    assert recap(out, first)["failed"] == 0 and recap(out, first)["changed"] == 0
    assert recap(out, broken)["failed"] == 1
    # The third batch never started: no task ran on its node.
    assert not re.search(r"^%s\s+:" % re.escape(untouched), out[out.rindex("PLAY RECAP"):], re.M), out[-3000:]
    assert "[%s]" % untouched not in out
    states = dict((n["host"], n["state"]) for n in report["nodes"])
    assert states == {first: "no_gpu", broken: "failed", untouched: "not_run"}, report["nodes"]
    assert report["tally"].startswith("3 nodes: ") and "1 not run" in report["tally"], report["tally"]
    text = report_text(out)
    assert re.search(r"^  containerd on %s: .*is not valid TOML" % re.escape(broken), text, re.M), text


DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"


def test_with_a_kubeconfig_only_nodes_that_change_are_drained_and_a_failed_one_stays_cordoned(own_lab, main_run, tmp_path):
    """site.yml with rollout_kubeconfig naming a test double of the Kubernetes API server (tests/k8s_api_double.py;
    no API server can be installed here): the runtime registration of two nodes drifted (their drop-in removed),
    the third converged. The drifted ones are drained right before containerd's change (one of them was cordoned
    before the run and stays so), the converged one is never asked about; then a drifted node whose validation fails
    stays cordoned and the report says so."""
    first, cordoned, converged = lab_hosts(own_lab["LAB_NAME_PREFIX"], NODES)
    pods = [pod("train-a", first, refusals=1), pod("train-b", cordoned), pod("idle", converged)]
    with ApiDouble({first: False, cordoned: True, converged: False}, pods) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        drain = ["-e", "rollout_kubeconfig=%s" % kubeconfig, "-e", "rollout_drain_delay=1"]
        for host in (first, cordoned):
            assert node(host, "rm", DROPIN).returncode == 0
        rc, out, report = site(own_lab, tmp_path, *drain)
        assert rc == 0, out[-5000:]
        # Per node, in order (the two nodes' calls interleave): cordon, the eviction the PodDisruptionBudget refused
        # once and its retry, then the uncordon after validate; the node cordoned before the run: its eviction only.
        assert [w for w in api.writes() if w[1] in (first, "default/train-a")] == [
            ("patch", first), ("evict", "default/train-a"), ("evict", "default/train-a"), ("patch", first)], api.writes()
        assert [w for w in api.writes() if w[1] in (cordoned, "default/train-b")] == [("evict", "default/train-b")], api.writes()
        assert api.writes()[-1] == ("patch", first) and api.nodes == {first: False, cordoned: True, converged: False}
        assert not [c for c in api.calls if converged in c[1]], api.calls
        assert recap(out, converged)["changed"] == 0
        notes = dict((n["host"], n["kubernetes"]) for n in report["nodes"])
        assert notes == {first: "drained before its containerd changed, uncordoned after validate passed",
                         cordoned: "drained before its containerd changed; it was cordoned before the run and stays cordoned",
                         converged: None}, notes
        assert "%s: kubernetes: drained before its containerd changed, uncordoned" % first in report_text(out)

        # Validation fails on the node after its drain: it stays cordoned, and the report says what to do.
        assert node(first, "rm", DROPIN).returncode == 0
        rc, out, report = site(own_lab, tmp_path, *drain, "-e", "validate_fail_without_gpu=true", "--limit", first)
        assert rc == 2, out[-5000:]
        assert api.nodes[first] is True and api.writes()[-1] == ("patch", first)
        entry = report["nodes"][0]
        assert entry["state"] == "failed" and entry["failed_stage"] == "validate", entry
        assert entry["kubernetes"].endswith("left cordoned (failed): uncordon it when it is fixed"), entry
        assert "%s: kubernetes: drained before its containerd changed; left cordoned (failed)" % first in report_text(out)
