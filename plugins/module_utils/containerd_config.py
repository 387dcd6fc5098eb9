# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd's own configuration model: versions, plugin ids, imports, merge rules.

What containerd does, as measured with ``containerd --config F config dump`` on
Debian's 1.6.20, 1.7.24 and sid's 2.1.9 (the lab's nodes):

- ``version`` missing means config version 1; the CRI plugin that holds the
  runtimes is ``cri`` (v1), ``io.containerd.grpc.v1.cri`` (v2) or
  ``io.containerd.cri.v1.runtime`` (v3, containerd 2.x).
- ``imports`` are loaded breadth first after the file that names them, each
  path once. Only entries with ``*`` are globs. Relative paths are relative to
  the importing file, except that 1.6 resolves relative globs against its
  working directory. A missing imported file stops 1.x; 2.x skips it.
- Before 2.1 an imported file replaces each plugin table it names as a whole
  (config.toml's CRI settings vanish when a drop-in names the CRI plugin), and
  a ``runtimes`` table, even an empty one, replaces the built-in runtimes (runc
  vanishes). 2.1 merges plugin tables key by key; arrays are replaced.
- Files are merged before they are migrated, so files of different versions
  lose settings: a drop-in must carry the version of config.toml.
- 2.x loses the CRI settings of a version 1 file; 1.7 refuses version 3.

containerd_dropin.py builds containerd_runtime's edit on this model: the
drop-in is computed from config.toml and the imports loaded before it, with
the merge rules of the containerd that will read it, and the result is checked
by merging every file again, the drop-in included.
"""

from __future__ import absolute_import, division, print_function

import copy
import errno
import fnmatch
import os
import re

from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw

CRI_PLUGIN_IDS = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
RUNC_SHIM = "io.containerd.runc.v2"
# k3s and RKE2 write their containerd config here from config.toml.tmpl on every start.
RANCHER_CONTAINERD_DIRS = (
    ("k3s", "/var/lib/rancher/k3s/agent/etc/containerd"),
    ("RKE2", "/var/lib/rancher/rke2/agent/etc/containerd"),
)


class ConfigError(Exception):
    """A configuration this module must not touch; the message says why and what to do."""


# ---- containerd itself ----


def parse_version_output(text):
    """`containerd --version` output -> (major, minor, patch), or None."""
    fields = (text or "").split()
    for field in fields[2:3] + fields:
        match = re.match(r"v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", field)
        if match:
            return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    return None


class Semantics(object):
    """How one containerd release loads config.toml and its imports.

    ``version`` is the containerd release as a tuple, None when unknown (no
    binary yet): then the rules that are safe for every release are used.
    """

    def __init__(self, version=None, plugin_merge="auto"):
        self.version = version
        if plugin_merge == "auto":
            plugin_merge = "deep" if version is not None and version >= (2, 1) else "replace"
        if plugin_merge not in ("replace", "deep"):
            raise ValueError("plugin_merge must be auto, replace or deep")
        self.plugin_merge = plugin_merge

    @property
    def missing_import_fatal(self):
        return self.version is None or self.version < (2, 0)

    @property
    def relative_glob_from_cwd(self):
        return self.version is not None and self.version < (1, 7)

    def fresh_config_version(self):
        """Version for a config we create: 3 for containerd 2.x, else 2 (as nvidia-ctk)."""
        return 3 if self.version is not None and self.version >= (2, 0) else 2

    def describe(self):
        if self.version is None:
            return "containerd (version unknown)"
        return "containerd %d.%d.%d" % self.version


# ---- reading files ----


def read_text(path):
    """A config file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("%s is not UTF-8 text; nothing was changed" % path) from None


def parse_config(path, text):
    try:
        return toml_rw.parse(text)
    except toml_rw.TomlError as exc:
        raise ConfigError("%s is not valid TOML: %s. Nothing was changed; fix the file and run again." % (path, exc)) from None


def config_version(data, path):
    """The config version a file declares; a missing key means 1."""
    if "version" not in data:
        return 1
    value = data["version"]
    if isinstance(value, bool) or not isinstance(value, int) or value not in CRI_PLUGIN_IDS:
        raise ConfigError(
            "%s declares config version %s; this module knows versions 1, 2 and 3 (containerd 1.x uses 2, 2.x uses 3). "
            "Nothing was changed." % (path, toml_rw.type_name(value) if isinstance(value, (list, dict)) else toml_rw.format_value(value))
        )
    return value


def imports_of(data, path):
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(entry, str) for entry in imports):
        raise ConfigError("%s: imports must be an array of file paths; nothing was changed" % path)
    return imports


def _split(path):
    return [part for part in path.split("/") if part]


def glob_match(pattern, path):
    """Whether a containerd import glob matches ``path`` (``*`` stops at ``/``)."""
    parts, names = _split(pattern), _split(path)
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(n, p) for p, n in zip(parts, names))


def _glob(pattern):
    """Files matching a glob, sorted as Go's filepath.Glob returns them (dot files included)."""
    found = ["/"]
    for part in _split(pattern):
        nxt = []
        for base in found:
            if any(c in part for c in "*?["):
                try:
                    names = os.listdir(base)
                except OSError:
                    continue
                nxt.extend(os.path.join(base, n) for n in names if fnmatch.fnmatchcase(n, part))
            elif os.path.lexists(os.path.join(base, part)):
                nxt.append(os.path.join(base, part))
        found = nxt
    return sorted(p for p in found if os.path.isfile(p))


def resolve_imports(parent, entries, semantics, assume_exists=None):
    """The files an ``imports`` array names, in containerd's order.

    ``assume_exists`` is a path to count as present for globs (the drop-in
    about to be written).
    """
    out = []
    base = os.path.dirname(parent)
    for entry in entries:
        if "*" in entry:
            pattern = entry
            if not os.path.isabs(pattern):
                pattern = os.path.join("/" if semantics.relative_glob_from_cwd else base, pattern)
            matches = set(_glob(pattern))
            if assume_exists and glob_match(pattern, assume_exists):
                matches.add(assume_exists)
            out.extend(sorted(matches))
        else:
            out.append(os.path.normpath(entry if os.path.isabs(entry) else os.path.join(base, entry)))
    return out


class Loaded(object):
    """One file in containerd's load order; ``data`` is None for the drop-in."""

    def __init__(self, path, data, version):
        self.path = path
        self.data = data
        self.version = version


def load_order(main_path, main_data, semantics, dropin_path, read=read_text):
    """Every file containerd merges, in its order, starting with config.toml."""
    order = []
    seen = set()
    pending = [(main_path, None)]
    while pending:
        path, parent = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        if path == dropin_path:
            order.append(Loaded(path, None, None))
            continue
        if parent is None:
            data = main_data
        else:
            text = read(path)
            if text is None:
                if semantics.missing_import_fatal:
                    raise ConfigError(
                        "%s imports %s, which does not exist: %s refuses to start with a missing import. "
                        "Remove the entry or create the file; nothing was changed." % (parent, path, semantics.describe())
                    )
                continue
            data = parse_config(path, text).data
        order.append(Loaded(path, data, config_version(data, path)))
        pending.extend((p, path) for p in resolve_imports(path, imports_of(data, path), semantics, dropin_path))
    return order


# ---- merging ----


def deep_merge(base, over):
    result = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge(datas, semantics):
    """The configuration containerd builds from files merged in this order."""
    out = {}
    for data in datas:
        for key, value in data.items():
            if key in ("version", "imports"):
                continue
            if key == "plugins" and isinstance(value, dict) and isinstance(out.get("plugins"), dict):
                plugins = out["plugins"]
                for plugin_id, table in value.items():
                    if semantics.plugin_merge == "deep" and isinstance(table, dict) and isinstance(plugins.get(plugin_id), dict):
                        plugins[plugin_id] = deep_merge(plugins[plugin_id], table)
                    else:
                        plugins[plugin_id] = copy.deepcopy(table)
            elif isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def leaves(data, prefix=()):
    """(path, value) for every non-table value under ``data``."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def get_path(data, path):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# ---- what containerd itself reports ----


def effective_runtime(dump_text, name):
    """The runtime as `containerd config dump` shows it, with the CRI plugin's default and CDI."""
    data = toml_rw.loads(dump_text)
    version = config_version(data, "containerd config dump")
    plugin_id = CRI_PLUGIN_IDS[version]
    cri = get_path(data, ("plugins", plugin_id)) or {}
    runtimes = get_path(cri, ("containerd", "runtimes")) or {}
    return {
        "config_version": version,
        "plugin_id": plugin_id,
        "runtime": runtimes.get(name),
        "runtimes": sorted(runtimes),
        "default_runtime_name": get_path(cri, ("containerd", "default_runtime_name")),
        "enable_cdi": cri.get("enable_cdi"),
        "cdi_spec_dirs": cri.get("cdi_spec_dirs"),
    }


def rancher_containerd(config_path, root="/"):
    """k3s/RKE2 whose containerd config directory exists: [(name, dir, manages config_path)]."""
    found = []
    for name, directory in RANCHER_CONTAINERD_DIRS:
        if os.path.isdir(os.path.join(root, directory.lstrip("/"))):
            inside = os.path.normpath(config_path).startswith(directory + "/")
            found.append((name, directory, inside))
    return found
