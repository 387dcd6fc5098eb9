# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The package manager's health, read without changing anything, and how to repair it.

What a killed run or a power loss leaves behind: on Debian and Ubuntu an
interrupted dpkg (its journal in /var/lib/dpkg/updates, after which apt refuses
to work), packages left half-installed, unpacked or half-configured, and
triggers not run; on EL an unfinished dnf transaction (both versions of a package
installed). Plus who holds the locks, which a live run does, and an orphaned run
from a killed controller still does. Files are read under ``root`` (for tests);
``run`` is the runner of runner.py.
"""

from __future__ import absolute_import, division, print_function

import os
import re

from ansible_collections.gpunode.nvidia.plugins.module_utils import pkg_locks

# dpkg's states that only a finished run leaves behind (dpkg-query(1), "Package states").
DPKG_BROKEN_STATES = ("half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending")
# Packages dnf keeps several versions of (installonlypkgs), besides the keys rpm lists as packages.
RPM_MULTI_VERSION = re.compile(r"^(kernel(-\S+)?|gpg-pubkey|installonlypkg\(\S+\))$")
_RPM_FORMAT = "%{NAME}.%{ARCH}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n"


def dpkg_pending(status_text):
    """[{"name", "state"}] for each package dpkg's status file shows left half-way.

    A package that needs reinstalling ("reinstreq") is reported as such: only a
    reinstall from its archive repairs it.
    """
    found = []
    for stanza in re.split(r"\n\s*\n", status_text or ""):
        fields = dict(re.findall(r"^(Package|Status): *(.*)$", stanza, re.M))
        words = fields.get("Status", "").split()
        if "Package" not in fields or len(words) != 3:
            continue
        _want, flag, state = words
        if flag == "reinstreq":
            found.append({"name": fields["Package"], "state": "reinstreq " + state})
        elif state in DPKG_BROKEN_STATES:
            found.append({"name": fields["Package"], "state": state})
    return sorted(found, key=lambda p: p["name"])


def dpkg_interrupted(root="/"):
    """Whether dpkg's journal holds updates a killed dpkg did not fold in (what makes
    apt say "dpkg was interrupted"): files named by digits in /var/lib/dpkg/updates."""
    try:
        names = os.listdir(os.path.join(root, "var/lib/dpkg/updates"))
    except OSError:
        return False
    return any(name.isdigit() for name in names)


def rpm_duplicates(run):
    """Package names installed in two versions at once (besides kernels and keys): what
    a dnf transaction killed between its install and its erase leaves."""
    rc, out, _err = run(["rpm", "-qa", "--qf", _RPM_FORMAT])
    if rc != 0:
        return []
    versions = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and not RPM_MULTI_VERSION.match(fields[0].rsplit(".", 1)[0]):
            versions.setdefault(fields[0], set()).add(fields[1])
    return sorted(n for n, found in versions.items() if len(found) > 1)


def repair_commands(family, state):
    """The commands, in order, that repair ``state`` (each an argv list); [] when healthy."""
    if state["healthy"]:
        return []
    if family == "Debian":
        # Keep every configuration file a user changed, without asking.
        apt_get = ["apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
        commands = [["dpkg", "--force-confdef", "--force-confold", "--configure", "-a"], apt_get + ["-f", "install"]]
        reinstall = [p["name"] for p in state["pending"] if p["state"].startswith(("reinstreq", "half-installed"))]
        if reinstall:
            commands.append(apt_get + ["install", "--reinstall"] + reinstall)
        return commands
    if family == "RedHat":
        return [["dnf", "-y", "remove", "--duplicates"]]
    return []


def command_line(argv):
    """An argv as the one line an operator types."""
    return " ".join(argv)


def health(family, run, root="/"):
    """The package manager's state: manager, interrupted, pending, locks, healthy, repair.

    ``pending`` holds {"name", "state"} (dpkg) or {"name", "state": "duplicate"} (rpm);
    ``repair`` the command lines that would fix it. A held lock is not ill health (a
    live run holds it, and what it has half-done is its own business) but a reason to
    wait before judging.
    """
    if family == "Debian":
        try:
            with open(os.path.join(root, "var/lib/dpkg/status")) as handle:
                status = handle.read()
        except (OSError, UnicodeDecodeError):
            status = ""
        state = {
            "manager": "dpkg",
            "interrupted": dpkg_interrupted(root),
            "pending": dpkg_pending(status),
            "locks": pkg_locks.holders(pkg_locks.DPKG_LOCKS, root=root),
        }
    elif family == "RedHat":
        state = {
            "manager": "rpm",
            "interrupted": False,
            "pending": [{"name": n, "state": "duplicate"} for n in rpm_duplicates(run)],
            "locks": pkg_locks.holders(pkg_locks.RPM_LOCKS, pkg_locks.DNF_PID_LOCKS, root=root),
        }
    else:
        return {"manager": None, "interrupted": False, "pending": [], "locks": [], "healthy": True, "repair": []}
    state["healthy"] = not state["interrupted"] and not state["pending"]
    state["repair"] = [command_line(c) for c in repair_commands(family, state)]
    return state


def summary(state):
    """One line on what is wrong, for messages and the run report ("" when healthy)."""
    parts = []
    if state.get("interrupted"):
        parts.append("%s was interrupted" % state["manager"])
    by_state = {}
    for package in state.get("pending") or []:
        by_state.setdefault(package["state"], []).append(package["name"])
    parts.extend("%s: %s" % (name, ", ".join(names)) for name, names in sorted(by_state.items()))
    return "; ".join(parts)
