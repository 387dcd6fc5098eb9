# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd_runtime's edit: the runtime drop-in, the imports entry in
config.toml, and their undo.

:func:`plan_present` computes what config.toml and the drop-in must become so
that containerd (as containerd_config.py models it) registers the runtime;
:func:`plan_absent` undoes exactly what it did, as the drop-in's header
records it. config.toml is edited byte for byte: one imports entry, never a
rewrite.
"""

from __future__ import absolute_import, division, print_function

import copy
import json
import re

from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw
from ansible_collections.gpunode.nvidia.plugins.module_utils.containerd_config import (
    CRI_PLUGIN_IDS,
    RUNC_SHIM,
    ConfigError,
    config_version,
    get_path,
    glob_match,
    imports_of,
    leaves,
    load_order,
    merge,
    parse_config,
    read_text,
)

MARKER = "gpunode.nvidia.containerd_runtime"
_MARKER_LINE = re.compile(r"^# gpunode\.nvidia\.containerd_runtime (\{.*\})[ \t]*$", re.MULTILINE)


# ---- tables of the effective configuration ----


def _table(parent, key, where):
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError("%s.%s must be a table, found %s; nothing was changed" % (where, key, toml_rw.format_value(value)))
    return value


# ---- editing config.toml's imports, byte for byte ----


def add_import(text, doc, path):
    """``text`` with ``path`` appended to the top-level imports; returns (text, edit)."""
    literal = toml_rw.format_string(path)
    newline = "\r\n" if "\r\n" in text else "\n"
    span = doc.spans.get("imports")
    if span is None:
        line = "imports = [%s]%s" % (literal, newline)
        version = doc.spans.get("version")
        at = version.end if version is not None else 0
        prefix = newline if at > 0 and text[at - 1] != "\n" else ""
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
        insert = "," + newline + indent + literal
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
        main_after = "version = %d%s" % (version, "\r\n" if "\r\n" in main_text else "\n") + main_text
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
