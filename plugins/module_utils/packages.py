# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The package manager, read: installed versions and holds, what the cache offers.

One reader each for preflight_facts and driver_state. Commands go through
``run``, a callable (argv) -> (rc, stdout, stderr) (see runner.py); the dnf
versionlock list is read under ``root`` (for tests). The cache is only read,
never refreshed (slow, and a change).
"""

from __future__ import absolute_import, division, print_function

import re

from ansible_collections.gpunode.nvidia.plugins.module_utils.sysfs import _path, read_text

_DPKG_FORMAT = "${Package}\t${Version}\t${db:Status-Status}\t${db:Status-Want}\n"
_RPM_FORMAT = "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n"
_META_DEPENDS_RE = re.compile(r"^\s*Depends: linux-headers-(\d\S*)\s*$")


def installed(family, names, run, root="/"):
    """Installed packages matching ``names`` (exact names or shell patterns) in one query.

    Returns ``({name: version}, [held names])``: apt holds from dpkg's selection
    state, dnf holds from the versionlock list (see :func:`dnf_locked`). Versions
    carry the epoch where it is not 0 (dpkg's ${Version}, rpm's EPOCHNUM).
    """
    if not names:
        return {}, []
    if family == "Debian":
        # dpkg-query exits 1 when a name or pattern matches nothing but prints the rest.
        _rc, out, _err = run(["dpkg-query", "-W", "-f", _DPKG_FORMAT] + list(names))
        versions, held = {}, []
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) != 4:
                continue
            if fields[2] == "installed":
                versions[fields[0]] = fields[1]
            if fields[3] == "hold":
                held.append(fields[0])
        return versions, sorted(held)
    if family == "RedHat":
        _rc, out, _err = run(["rpm", "-qa", "--qf", _RPM_FORMAT] + list(names))
        versions = {}
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and ":" in fields[1]:
                epoch, rest = fields[1].split(":", 1)
                versions[fields[0]] = rest if epoch == "0" else fields[1]
        return versions, dnf_locked(sorted(versions), root)
    return {}, []


def versions(family, names, run, root="/"):
    """Installed version of each of ``names`` (exact names): {name: version or None}."""
    found, _held = installed(family, names, run, root)
    return dict((n, found.get(n)) for n in names)


def dnf_locked(names, root="/"):
    """Names that an entry of dnf's versionlock list covers.

    Entries are NEVRA patterns such as ``nvidia-driver-3:550.54.15-1.el9.*``:
    the name is followed by a dash and the (epoch or) version, which starts with
    a digit, so ``nvidia-driver`` does not match ``nvidia-driver-cuda-3:...``.
    """
    text = read_text(_path(root, "etc/dnf/plugins/versionlock.list")) or ""
    entries = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "!"))]
    return sorted(n for n in names if any(re.match(re.escape(n) + r"-\d", e) for e in entries))


def available(family, names, run):
    """Whether the package manager's cached metadata offers each of ``names``.

    Returns {name: True/False, or None when the cache cannot say}. apt answers
    for every name in one ``apt-cache policy`` call, one block per package it
    knows; dnf is asked name by name.
    """
    result = dict((n, None) for n in names)
    if not names:
        return result
    if family == "Debian":
        rc, out, _err = run(["apt-cache", "policy"] + list(names))
        if rc != 0:
            return result
        result = dict((n, False) for n in names)
        current = None
        for raw in out.splitlines():
            if raw and not raw[0].isspace() and raw.rstrip().endswith(":"):
                current = raw.rstrip()[:-1]
                continue
            line = raw.strip()
            if line.startswith("Candidate:") and current in result:
                result[current] = line.split(":", 1)[1].strip() not in ("", "(none)")
        return result
    if family == "RedHat":
        for name in names:
            rc, out, _err = run(["dnf", "-q", "--cacheonly", "repoquery", name])
            result[name] = bool(out.strip()) if rc == 0 else None
    return result


def headers_package(family, release):
    """The package that provides build headers for ``release`` on this family."""
    if family == "Debian":
        return "linux-headers-%s" % release
    if family == "RedHat":
        return "kernel-devel-%s" % release
    return None


def packaged_kernel(family, meta, run):
    """The kernel release a distribution's headers metapackage stands for, from the cache.

    Debian's linux-headers-amd64 and Ubuntu's linux-headers-generic depend on the
    versioned headers package of the current kernel; on EL the newest kernel-devel.
    None when the cache does not say.
    """
    if family == "Debian":
        rc, out, _err = run(["apt-cache", "depends", meta])
        if rc != 0:
            return None
        for line in out.splitlines():
            match = _META_DEPENDS_RE.match(line)
            if match:
                return match.group(1)
        return None
    if family == "RedHat":
        rc, out, _err = run(["dnf", "-q", "--cacheonly", "repoquery", "--latest-limit", "1", "--qf", "%{version}-%{release}.%{arch}", meta])
        lines = [line.strip() for line in out.splitlines() if line.strip()] if rc == 0 else []
        return lines[-1] if lines else None
    return None
