# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd configuration: versions, imports, merge rules, and a runtime drop-in.

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

So the drop-in is computed from config.toml and the imports loaded before it,
with the merge rules of the containerd that will read it, and the result is
checked by merging every file again, the drop-in included.
"""

from __future__ import absolute_import, division, print_function

import copy
import errno
import fnmatch
import json
import os
import re

from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw

CRI_PLUGIN_IDS = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
RUNC_SHIM = "io.containerd.runc.v2"
MARKER = "gpunode.nvidia.containerd_runtime"
_MARKER_LINE = re.compile(r"^# gpunode\.nvidia\.containerd_runtime (\{.*\})[ \t]*$", re.MULTILINE)
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
            "Nothing was changed." % (path, toml_rw.format_value(value))
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


def _table(parent, key, where):
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("%s.%s must be a table, found %s; nothing was changed" % (where, key, toml_rw.format_value(value)))
    return value


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


# ---- editing config.toml's imports, byte for byte ----


def add_import(text, doc, path):
    """``text`` with ``path`` appended to the top-level imports; returns (text, edit)."""
    literal = toml_rw.format_string(path)
    span = doc.spans.get("imports")
    if span is None:
        line = "imports = [%s]\n" % literal
        version = doc.spans.get("version")
        at = version.end if version is not None else 0
        prefix = "\n" if at > 0 and text[at - 1] != "\n" else ""
        return text[:at] + prefix + line + text[at:], "imports"
    if not span.items:
        at = span.value_start + 1
        return text[:at] + literal + text[at:], "entry"
    last_start, last_end = span.items[-1]
    if "\n" in text[span.value_start:span.value_end]:
        line_start = text.rfind("\n", 0, last_start) + 1
        indent = text[line_start:last_start]
        if indent.strip():
            indent = "  "
        insert = ",\n" + indent + literal
    else:
        insert = ", " + literal
    return text[:last_end] + insert + text[last_end:], "entry"


def remove_import(text, path):
    """``text`` without any top-level imports entry equal to ``path``; other bytes kept."""
    while True:
        doc = toml_rw.parse(text)
        span = doc.spans.get("imports")
        values = doc.data.get("imports")
        if span is None or not isinstance(values, list) or path not in values:
            return text
        i = len(values) - 1 - values[::-1].index(path)
        start, end = span.items[i]
        if i > 0:
            text = text[:span.items[i - 1][1]] + text[end:]
        elif len(values) > 1:
            text = text[:start] + text[span.items[1][0]:]
        else:
            text = text[:span.value_start + 1] + text[span.value_end - 1:]


def _remove_key_line(text, key):
    span = toml_rw.parse(text).spans.get(key)
    return text if span is None else text[:span.start] + text[span.end:]


def created_text(version, dropin_path):
    return "version = %d\nimports = [%s]\n" % (version, toml_rw.format_string(dropin_path))


# ---- the drop-in's own record ----


def dropin_record(text):
    """What a drop-in of ours records (runtime, config, edits), or None if not ours."""
    if text is None:
        return None
    match = _MARKER_LINE.search(text)
    if not match:
        return None
    try:
        record = json.loads(match.group(1))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def render_dropin(data, record, plugin_merge):
    lines = ["# Managed by %s: rewritten on every run, removed with state=absent." % MARKER]
    if plugin_merge == "replace":
        lines += [
            "# containerd before 2.1 takes each plugin table whole from the last file that names it, so",
            "# this file carries the complete CRI plugin table of the files loaded before it, plus the",
            "# runtime. Change those settings in %s and run the module again." % record["config"],
        ]
    lines.append("# %s %s" % (MARKER, json.dumps(record, sort_keys=True)))
    return "\n".join(lines) + "\n\n" + toml_rw.dumps(data)


# ---- the plan ----


class Plan(object):
    """Texts before and after (None: no file) and what the runtime became."""

    def __init__(self):
        self.main_before = self.main_after = None
        self.dropin_before = self.dropin_after = None
        self.version = None
        self.plugin_id = None
        self.plugin_merge = None
        self.runtime = None
        self.imports = []
        self.warnings = []

    @property
    def main_changed(self):
        return self.main_before != self.main_after

    @property
    def dropin_changed(self):
        return self.dropin_before != self.dropin_after

    @property
    def changed(self):
        return self.main_changed or self.dropin_changed


def _check_ours(dropin_path, dropin_text, name):
    """The drop-in's record if it is ours and for this runtime; fail otherwise."""
    if dropin_text is None:
        return None
    record = dropin_record(dropin_text)
    if record is None:
        raise ConfigError(
            "%s exists and was not written by %s: move it away or choose another dropin_path; "
            "nothing was changed." % (dropin_path, MARKER)
        )
    if record.get("runtime") != name:
        raise ConfigError(
            "%s holds runtime %r, not %r: give each runtime its own dropin_path; nothing was changed."
            % (dropin_path, record.get("runtime"), name)
        )
    return record


def _options(runtime, where):
    """A runtime's options table, created when missing."""
    options = runtime.get("options")
    if options is None:
        options = runtime["options"] = {}
    elif not isinstance(options, dict):
        raise ConfigError("%s: a runtime's options must be a table; nothing was changed" % where)
    return options


def _default_runtimes(defaults, version):
    """The built-in runtimes table from `containerd config default`, when it fits ``version``."""
    if defaults:
        try:
            default_version = config_version(defaults, "containerd config default")
        except ConfigError:
            default_version = None
        # 1.x reads version 1 and 2 files into the same CRI settings; 2.x's default is version 3.
        if default_version is not None and (default_version == version or (version, default_version) == (1, 2)):
            runtimes = get_path(defaults, ("plugins", CRI_PLUGIN_IDS[default_version], "containerd", "runtimes"))
            if isinstance(runtimes, dict) and runtimes:
                return copy.deepcopy(runtimes)
    return {"runc": {"runtime_type": RUNC_SHIM}}


def _build(cri, params, version, defaults, plan):
    """(runtimes table to write, base runtime name, the new runtime) from the effective CRI table."""
    where = "plugins.%s" % toml_rw.format_key(CRI_PLUGIN_IDS[version])
    ctd = _table(cri, "containerd", where) or {}
    runtimes = _table(ctd, "runtimes", where + ".containerd")
    if runtimes is None:
        runtimes = _default_runtimes(defaults(), version)
    else:
        runtimes = copy.deepcopy(runtimes)
    for rt_name, table in runtimes.items():
        if not isinstance(table, dict):
            raise ConfigError("%s.containerd.runtimes.%s must be a table; nothing was changed" % (where, rt_name))
    default_name = ctd.get("default_runtime_name") or "runc"
    options = params.get("default_runtime_options") or {}
    if options:
        if default_name in runtimes:
            _options(runtimes[default_name], where).update(options)
        else:
            plan.warnings.append(
                "the default runtime %r is not defined, so default_runtime_options were not applied" % default_name
            )
    base_name = next((n for n in (default_name, "runc", "crun") if n in runtimes), None)
    if base_name is None:
        plan.warnings.append("no default, runc or crun runtime to inherit options from; %s gets only its own" % params["name"])
        base = {}
    else:
        base = runtimes[base_name]
    runtime = copy.deepcopy(base)
    if base.get("runtime_type", RUNC_SHIM) != params["runtime_type"]:
        # Another shim takes other options: inherit nothing from runc.
        runtime = {}
    runtime["runtime_type"] = params["runtime_type"]
    if params.get("binary_name"):
        _options(runtime, where)["BinaryName"] = params["binary_name"]
    runtimes[params["name"]] = runtime
    return runtimes, default_name, runtime


def _wanted(plan, params, default_name, runtimes):
    """(path under the CRI table, value) pairs that must hold in the merged config."""
    want = [(("containerd", "runtimes", params["name"]) + path, value) for path, value in leaves(plan.runtime)]
    for key, value in (params.get("default_runtime_options") or {}).items():
        if default_name in runtimes and default_name != params["name"]:
            want.append((("containerd", "runtimes", default_name, "options", key), value))
    if params.get("set_as_default"):
        want.append((("containerd", "default_runtime_name"), params["name"]))
    if params.get("enable_cdi"):
        want.append((("enable_cdi",), True))
        if params.get("cdi_spec_dirs") is not None:
            want.append((("cdi_spec_dirs",), list(params["cdi_spec_dirs"])))
    return want


def _check_version(version, semantics, params, config_path):
    if semantics.version is None:
        return
    if version == 3 and semantics.version < (2, 0):
        raise ConfigError(
            "%s is config version 3, which %s cannot read (it needs containerd 2.x). "
            "Nothing was changed." % (config_path, semantics.describe())
        )
    if version == 1 and semantics.version >= (2, 0):
        raise ConfigError(
            "%s has no version key (config version 1): %s does not apply the CRI settings of a version 1 file, "
            "so they are already lost. Convert it with `containerd config migrate` (review the result) and run again; "
            "nothing was changed." % (config_path, semantics.describe())
        )
    if params.get("enable_cdi") and semantics.version < (1, 7):
        raise ConfigError("%s has no CDI support (it came in containerd 1.7): set enable_cdi false." % semantics.describe())


def plan_present(params, main_text, dropin_text, semantics, *, defaults=lambda: None, read=read_text):
    """What config.toml and the drop-in must become for the runtime to be registered.

    ``params``: name, binary_name, runtime_type, set_as_default, enable_cdi,
    cdi_spec_dirs, default_runtime_options, config_path, dropin_path.
    ``defaults`` returns `containerd config default` parsed, or None; it is
    called only when the built-in runtimes must be written out.
    """
    config_path, dropin_path = params["config_path"], params["dropin_path"]
    plan = Plan()
    plan.main_before, plan.dropin_before = main_text, dropin_text
    plan.plugin_merge = semantics.plugin_merge
    record = _check_ours(dropin_path, dropin_text, params["name"])
    edits = set(record.get("edits", [])) if record else set()

    doc = parse_config(config_path, main_text) if main_text is not None else None
    if main_text is None:
        version = semantics.fresh_config_version()
        main_after = created_text(version, dropin_path)
        edits.add("created")
    elif not doc.data:
        # Empty, or comments only: nothing to keep but the text itself.
        version = semantics.fresh_config_version()
        main_after = "version = %d\n" % version + main_text
        main_after, _edit = add_import(main_after, parse_config(config_path, main_after), dropin_path)
        edits.update(("version", "imports"))
    else:
        version = config_version(doc.data, config_path)
        main_after = main_text
        covered = any(
            entry == dropin_path or ("*" in entry and glob_match(entry, dropin_path)) for entry in imports_of(doc.data, config_path)
        )
        if not covered:
            main_after, edit = add_import(main_text, doc, dropin_path)
            edits.add(edit)
    _check_version(version, semantics, params, config_path)
    plan.version, plan.plugin_id = version, CRI_PLUGIN_IDS[version]
    plan.main_after = main_after
    main_data = parse_config(config_path, main_after).data

    order = load_order(config_path, main_data, semantics, dropin_path, read)
    position = [i for i, item in enumerate(order) if item.path == dropin_path]
    if not position:
        raise ConfigError(
            "%s would not be loaded: config.toml's imports do not reach it. Nothing was changed." % dropin_path
        )
    before, after = order[:position[0]], order[position[0] + 1:]
    for item in before + after:
        if item.version != version:
            raise ConfigError(
                "%s is config version %d but %s is version %d: containerd merges files before it migrates them, so "
                "mixed versions lose settings. Give every file the same version; nothing was changed."
                % (item.path, item.version, config_path, version)
            )
    plan.imports = imports_of(main_data, config_path)

    effective = merge([item.data for item in before], semantics)
    plugins = _table(effective, "plugins", "config") or {}
    cri = copy.deepcopy(_table(plugins, plan.plugin_id, "plugins") or {})
    runtimes, default_name, runtime = _build(cri, params, version, defaults, plan)
    plan.runtime = runtime

    if semantics.plugin_merge == "replace":
        table = cri
        ctd = table.setdefault("containerd", {})
        ctd["runtimes"] = runtimes
    else:
        table = {}
        ctd = table.setdefault("containerd", {})
        ours = {}
        options = params.get("default_runtime_options") or {}
        if options and default_name in runtimes and default_name != params["name"]:
            ours[default_name] = {"options": dict(options)}
        ours[params["name"]] = runtime
        ctd["runtimes"] = ours
    if params.get("set_as_default"):
        ctd["default_runtime_name"] = params["name"]
    if params.get("enable_cdi"):
        table["enable_cdi"] = True
        if params.get("cdi_spec_dirs") is not None:
            table["cdi_spec_dirs"] = list(params["cdi_spec_dirs"])
    data = {} if version == 1 else {"version": version}
    data["plugins"] = {plan.plugin_id: table}

    # Merge everything again, the drop-in included: what follows it must not undo it.
    result = merge([item.data for item in before] + [data] + [item.data for item in after], semantics)
    result_cri = get_path(result, ("plugins", plan.plugin_id)) or {}
    for path, value in _wanted(plan, params, default_name, runtimes):
        if get_path(result_cri, path) != value:
            culprit = next((item.path for item in after if get_path(item.data, ("plugins", plan.plugin_id)) is not None), None)
            raise ConfigError(
                "conflicting layout: %s is loaded after %s and sets the %s plugin table, so %s would not take effect "
                "with %s (%s merge of plugin tables). Import the drop-in last, or move those settings into config.toml; "
                "nothing was changed." % (culprit or "a later import", dropin_path, plan.plugin_id,
                                          ".".join(path), semantics.describe(), semantics.plugin_merge)
            )

    if main_text is not None and doc is not None and doc.data:
        ignored = [pid for pid in CRI_PLUGIN_IDS.values() if pid != plan.plugin_id and get_path(doc.data, ("plugins", pid, "containerd", "runtimes"))]
        if ignored:
            plan.warnings.append(
                "%s defines runtimes under plugin %s, which a version %d config ignores" % (config_path, ignored[0], version)
            )
    record = {"runtime": params["name"], "config": config_path, "edits": sorted(edits)}
    plan.dropin_after = render_dropin(data, record, semantics.plugin_merge)
    return plan


def plan_absent(params, main_text, dropin_text):
    """Undo plan_present: drop the import entry (and lines we added), delete the drop-in."""
    config_path, dropin_path = params["config_path"], params["dropin_path"]
    plan = Plan()
    plan.main_before, plan.dropin_before = main_text, dropin_text
    record = _check_ours(dropin_path, dropin_text, params["name"])
    edits = set(record.get("edits", [])) if record else set()
    if main_text is None:
        return plan
    doc = parse_config(config_path, main_text)
    imports_of(doc.data, config_path)
    text = remove_import(main_text, dropin_path)
    data = parse_config(config_path, text).data
    if edits & {"imports", "created"} and data.get("imports") == []:
        text = _remove_key_line(text, "imports")
        data = parse_config(config_path, text).data
    if edits & {"version", "created"} and list(data) == ["version"]:
        text = _remove_key_line(text, "version")
    if "created" in edits and not text.strip():
        text = None
    plan.main_after = text
    if text is not None:
        data = parse_config(config_path, text).data
        plan.imports = imports_of(data, config_path)
        plan.version = config_version(data, config_path)
    return plan


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
