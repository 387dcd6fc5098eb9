"""package_repair: waiting for locks, repairing, refusing; the package manager is a test double here
(states fed in, commands recorded). The real dpkg repairs are run on lab nodes (tests/lab/test_faults.py)."""

from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.modules import package_repair

from ...utils import run_module, warnings_of

LOCK = {"path": "/var/lib/dpkg/lock-frontend", "pid": 4242, "command": "apt-get"}
HEALTHY = {"manager": "dpkg", "interrupted": False, "pending": [], "locks": [], "healthy": True, "repair": []}
BROKEN = dict(HEALTHY, interrupted=True, pending=[{"name": "containerd", "state": "half-configured"}], healthy=False)


def states(*sequence):
    """health() answering each state in turn, then the last one for ever."""
    answers = list(sequence)

    def health(_family, _run, _root="/"):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return health


@pytest.fixture(name="node")
def fixture_node():
    """A Debian node whose package manager answers from the test; records the commands run."""
    ran = []

    def run_command(_self, argv, **_kwargs):
        ran.append(argv)
        return 0, "Setting up containerd (1.6.20~ds1-1+b1) ...\n", ""

    with mock.patch.object(package_repair.host, "os_facts", return_value={"family": "Debian"}), \
            mock.patch.object(AnsibleModule, "run_command", run_command), \
            mock.patch.object(AnsibleModule, "get_bin_path", lambda _self, name, **_kw: "/usr/bin/" + name), \
            mock.patch.object(package_repair.time, "sleep", lambda _s: None):
        yield ran


def test_healthy_and_unlocked_changes_nothing(node, capsys):
    with mock.patch.object(package_repair.pkg_health, "health", states(HEALTHY)):
        failed, result = run_module(package_repair.main, {}, capsys)
    assert not failed and result["changed"] is False and node == []
    assert result["repaired"] == "" and result["waited_for"] == []


def test_repairs_in_order_and_stops_once_healthy(node, capsys):
    with mock.patch.object(package_repair.pkg_health, "health", states(BROKEN, BROKEN, HEALTHY)):
        failed, result = run_module(package_repair.main, {}, capsys)
    assert not failed and result["changed"] is True
    assert result["repaired"] == "dpkg was interrupted; half-configured: containerd"
    # dpkg --configure -a did not make it healthy, apt-get -f install did: no third command.
    assert [argv[1:] for argv in node] == [
        ["--force-confdef", "--force-confold", "--configure", "-a"],
        ["-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "-f", "install"],
    ]
    assert [c["rc"] for c in result["commands"]] == [0, 0]
    # ansible-core gathers warnings process-wide: earlier module runs of the session may be listed too.
    assert (
        "the package manager was left half-way (dpkg was interrupted; half-configured: containerd); repaired with"
        " dpkg --force-confdef --force-confold --configure -a && apt-get -y -o Dpkg::Options::=--force-confdef"
        " -o Dpkg::Options::=--force-confold -f install"
    ) in warnings_of(result)
    assert result["after"]["healthy"] is True


def test_waits_for_an_orphaned_run_then_judges(node, capsys):
    locked = dict(HEALTHY, locks=[LOCK])
    with mock.patch.object(package_repair.pkg_health, "health", states(locked, locked, HEALTHY)):
        failed, result = run_module(package_repair.main, {"lock_timeout": 600}, capsys)
    assert not failed and result["changed"] is False and node == []
    assert result["waited_for"] == ["PID 4242 (apt-get) on /var/lib/dpkg/lock-frontend"]


def test_a_lock_held_past_the_timeout_names_its_holder(node, capsys):
    second = dict(LOCK, path="/var/lib/dpkg/lock")
    with mock.patch.object(package_repair.pkg_health, "health", states(dict(BROKEN, locks=[LOCK, second]))):
        failed, result = run_module(package_repair.main, {"lock_timeout": 0}, capsys)
    assert failed and node == []  # nothing is repaired under another run's lock
    assert result["msg"].startswith(
        "the package manager's lock is still held after 0 s by PID 4242 (apt-get) on /var/lib/dpkg/lock-frontend, /var/lib/dpkg/lock:")
    assert "preflight_package_lock_timeout" in result["msg"]


def test_repair_false_stops_with_the_exact_commands(node, capsys):
    with mock.patch.object(package_repair.pkg_health, "health", states(BROKEN)):
        failed, result = run_module(package_repair.main, {"repair": False}, capsys)
    assert failed and node == []
    assert "(dpkg was interrupted; half-configured: containerd)" in result["msg"]
    assert "dpkg --force-confdef --force-confold --configure -a && apt-get -y" in result["msg"]


def test_check_mode_says_what_it_would_run(node, capsys):
    with mock.patch.object(package_repair.pkg_health, "health", states(BROKEN)):
        failed, result = run_module(package_repair.main, {"_ansible_check_mode": True}, capsys)
    assert not failed and result["changed"] is True and node == []
    assert result["commands"][0] == {"command": "dpkg --force-confdef --force-confold --configure -a"}


def test_a_repair_that_does_not_take_fails_with_its_output(node, capsys):
    with mock.patch.object(package_repair.pkg_health, "health", states(BROKEN)):
        failed, result = run_module(package_repair.main, {}, capsys)
    assert failed and len(node) == 2
    assert "still half-way after dpkg" in result["msg"] and "Setting up containerd" in result["msg"]


def test_on_this_machine_it_reads_for_real(capsys):
    failed, result = run_module(package_repair.main, {"_ansible_check_mode": True}, capsys)
    assert not failed and result["before"]["manager"] in ("dpkg", "rpm", None)
