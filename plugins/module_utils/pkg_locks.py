# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who holds the package manager's locks, asked without taking them.

apt, dpkg and rpm hold fcntl locks on files; F_GETLK names the process that
holds a conflicting lock and leaves the lock alone. Standard library only, so
scripts/lib.sh runs this file with the machine's python3 as well
(``python3 pkg_locks.py PATH...`` prints "PID n (command) on PATH" for the first
held lock); modules use :func:`holders`.
"""

from __future__ import absolute_import, division, print_function

import fcntl
import os
import struct
import sys

# struct flock on LP64 Linux (x86_64, aarch64): type, whence, start, len, pid.
_FLOCK = "hhqqi4x"

DPKG_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock")
RPM_LOCKS = ("/var/lib/rpm/.rpm.lock",)
# dnf 4 keeps its own process locks as files holding the owner's PID.
DNF_PID_LOCKS = ("/var/lib/dnf/rpmdb_lock.pid", "/var/cache/dnf/metadata_lock.pid", "/var/cache/dnf/download_lock.pid")


def _join(root, path):
    return os.path.join(root, path.lstrip("/"))


def command_of(pid, root="/"):
    """The short command name of ``pid`` ("?" when it cannot be read)."""
    try:
        with open(_join(root, "proc/%d/comm" % pid)) as handle:
            return handle.read().strip() or "?"
    except (OSError, ValueError):
        return "?"


def fcntl_holder(path):
    """PID holding an fcntl lock on ``path`` that a write lock would conflict with, or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, 0, 0, 0, 0)
        ltype, _whence, _start, _len, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if ltype == fcntl.F_UNLCK else pid


def pid_file_holder(path, root="/"):
    """PID written in a lock file whose process still runs, or None."""
    try:
        with open(_join(root, path)) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return pid if os.path.isdir(_join(root, "proc/%d" % pid)) else None


def holders(fcntl_paths, pid_paths=(), root="/"):
    """[{"path", "pid", "command"}] for each held lock, in the order given."""
    found = []
    for path in fcntl_paths:
        pid = fcntl_holder(_join(root, path))
        if pid is not None:
            found.append({"path": path, "pid": pid, "command": command_of(pid, root)})
    for path in pid_paths:
        pid = pid_file_holder(path, root)
        if pid is not None:
            found.append({"path": path, "pid": pid, "command": command_of(pid, root)})
    return found


def describe(lock):
    """"PID n (command) on PATH", the words every message uses."""
    return "PID %d (%s) on %s" % (lock["pid"], lock["command"], lock["path"])


def describe_all(locks):
    """Every holder once, with the locks it holds: "PID n (command) on PATH, PATH"."""
    by_pid = {}
    for lock in locks:
        by_pid.setdefault((lock["pid"], lock["command"]), []).append(lock["path"])
    return "; ".join("PID %d (%s) on %s" % (pid, command, ", ".join(paths)) for (pid, command), paths in by_pid.items())


if __name__ == "__main__":
    held = holders(sys.argv[1:] or DPKG_LOCKS)
    if held:
        sys.stdout.write(describe(held[0]) + "\n")
