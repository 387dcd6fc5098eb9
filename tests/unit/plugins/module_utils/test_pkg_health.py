"""pkg_health and pkg_locks: dpkg's status file and journal, rpm duplicates, real fcntl lock holders."""

import os
import subprocess
import sys

from ansible_collections.gpunode.nvidia.plugins.module_utils import pkg_health, pkg_locks

from ...utils import FakeRun

# A status file as dpkg leaves it when killed during an upgrade: containerd half-configured,
# runc unpacked, a package whose files were half-written (reinstreq), one awaiting triggers,
# one removed with its configuration kept (healthy), and a healthy one.
STATUS = """Package: containerd
Status: install ok half-configured
Version: 1.6.20~ds1-1+b1

Package: runc
Status: install ok unpacked
Version: 1.1.5+ds1-1+deb12u1

Package: nvidia-kernel-dkms
Status: install reinstreq half-installed
Version: 535.261.03-1~deb12u1

Package: man-db
Status: install ok triggers-pending
Version: 2.11.2-2

Package: old-tool
Status: deinstall ok config-files
Version: 1.0

Package: bash
Status: install ok installed
Version: 5.2.15-2+b7
"""


def tree(tmp_path, status="", journal=()):
    root = tmp_path / "root"
    (root / "var/lib/dpkg/updates").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status)
    for name in journal:
        (root / "var/lib/dpkg/updates" / name).write_text("Package: containerd\n")
    return str(root)


def test_pending_packages_are_the_ones_left_half_way():
    assert pkg_health.dpkg_pending(STATUS) == [
        {"name": "containerd", "state": "half-configured"},
        {"name": "man-db", "state": "triggers-pending"},
        {"name": "nvidia-kernel-dkms", "state": "reinstreq half-installed"},
        {"name": "runc", "state": "unpacked"},
    ]


def test_a_healthy_status_file_has_nothing_pending():
    assert pkg_health.dpkg_pending("Package: bash\nStatus: install ok installed\n\nPackage: x\nStatus: purge ok not-installed\n") == []


def test_the_journal_marks_an_interrupted_dpkg(tmp_path):
    assert pkg_health.dpkg_interrupted(tree(tmp_path / "a", journal=["0000"])) is True
    # dpkg's own temporary file there is not a journal entry.
    assert pkg_health.dpkg_interrupted(tree(tmp_path / "b", journal=["tmp.i"])) is False
    assert pkg_health.dpkg_interrupted(str(tmp_path / "missing")) is False


def test_health_and_repair_on_debian(tmp_path):
    state = pkg_health.health("Debian", FakeRun(), tree(tmp_path, STATUS, ["0001"]))
    assert state["manager"] == "dpkg" and state["interrupted"] is True and state["healthy"] is False
    assert state["locks"] == []
    assert state["repair"] == [
        "dpkg --force-confdef --force-confold --configure -a",
        "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -f install",
        # Only a reinstall from the archive rewrites files a killed unpack left half-written.
        "apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install --reinstall nvidia-kernel-dkms",
    ]
    assert pkg_health.summary(state) == (
        "dpkg was interrupted; half-configured: containerd; reinstreq half-installed: nvidia-kernel-dkms;"
        " triggers-pending: man-db; unpacked: runc"
    )


def test_healthy_debian_needs_no_repair(tmp_path):
    state = pkg_health.health("Debian", FakeRun(), tree(tmp_path, "Package: bash\nStatus: install ok installed\n"))
    assert state["healthy"] is True and state["repair"] == [] and pkg_health.summary(state) == ""


def test_rpm_duplicates_leave_kernels_and_keys_alone(tmp_path):
    out = (
        "containerd.io.x86_64\t0:1.7.25-3.1.el9\ncontainerd.io.x86_64\t0:1.7.27-3.1.el9\n"
        "kernel-core.x86_64\t0:5.14.0-427.el9\nkernel-core.x86_64\t0:5.14.0-503.el9\n"
        "gpg-pubkey.(none)\t0:fd431d51-4ae0493b\ngpg-pubkey.(none)\t0:5a6340b3-6229229e\n"
        "glibc.i686\t0:2.34-100.el9\nglibc.x86_64\t0:2.34-100.el9\n"
    )
    state = pkg_health.health("RedHat", FakeRun({"rpm": (0, out, "")}), str(tmp_path))
    assert state["pending"] == [{"name": "containerd.io.x86_64", "state": "duplicate"}]
    assert state["healthy"] is False and state["repair"] == ["dnf -y remove --duplicates"]
    # rpm that cannot answer is no evidence of a broken transaction.
    assert pkg_health.health("RedHat", FakeRun({"rpm": (1, "", "error")}), str(tmp_path))["healthy"] is True


HOLDER = """
import fcntl, sys, time
handle = open(sys.argv[1], "a")
fcntl.lockf(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_a_real_lock_holder_is_named(tmp_path):
    lock = tmp_path / "lock-frontend"
    lock.write_text("")
    free = tmp_path / "lock"
    free.write_text("")
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        found = pkg_locks.holders([str(lock), str(free), str(tmp_path / "absent")])
        assert found == [{"path": str(lock), "pid": child.pid, "command": pkg_locks.command_of(child.pid)}]
        assert found[0]["command"] not in ("", "?")
        assert pkg_locks.describe(found[0]) == "PID %d (%s) on %s" % (child.pid, found[0]["command"], lock)
        # The script form that scripts/lib.sh runs says the same.
        out = subprocess.run([sys.executable, pkg_locks.__file__, str(free), str(lock)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == pkg_locks.describe(found[0])
    finally:
        child.kill()
        child.wait()
    assert pkg_locks.holders([str(lock)]) == []


def test_a_pid_file_lock_counts_only_while_its_process_runs(tmp_path):
    (tmp_path / "proc" / str(os.getpid())).mkdir(parents=True)
    (tmp_path / "proc" / str(os.getpid()) / "comm").write_text("dnf\n")
    (tmp_path / "var/lib/dnf").mkdir(parents=True)
    (tmp_path / "var/lib/dnf/rpmdb_lock.pid").write_text("%d\n" % os.getpid())
    (tmp_path / "var/cache/dnf").mkdir(parents=True)
    (tmp_path / "var/cache/dnf/metadata_lock.pid").write_text("999999999\n")
    found = pkg_locks.holders([], pkg_locks.DNF_PID_LOCKS, root=str(tmp_path))
    assert found == [{"path": "/var/lib/dnf/rpmdb_lock.pid", "pid": os.getpid(), "command": "dnf"}]
