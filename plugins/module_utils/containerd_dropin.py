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
    deep_merge,
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
        # The type, not the value: a value there could hold anything, registry credentials included.
        raise ConfigError("%s.%s must be a table, found %s; nothing was changed" % (where, key, toml_rw.type_name(value)))
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
    if record.get("taken_over"):
        lines.append("# Taken over from the drop-in another tool wrote here (kept in the record below); state=absent puts it back.")
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


def _shim(runtime):
    """A runtime's shim: an empty or missing runtime_type is containerd's default, runc v2."""
    return runtime.get("runtime_type") or RUNC_SHIM


def _earlier_dropin(dropin_text, name):
    """The parsed drop-in another tool left at our path, when we can take it over; else None.

    nvidia-ctk (`runtime configure`) and the GPU Operator's toolkit container write
    their drop-in at the same default path: version and plugins only, CRI plugin
    tables only, and the runtime we manage defined in one of them.
    """
    try:
        data = toml_rw.loads(dropin_text)
    except toml_rw.TomlError:
        return None
    plugins = data.get("plugins")
    if not set(data) <= {"version", "plugins"} or not isinstance(plugins, dict):
        return None
    if not set(plugins) <= set(CRI_PLUGIN_IDS.values()) | {"io.containerd.cri.v1.images"}:
        return None
    if not any(isinstance(get_path(table, ("containerd", "runtimes", name)), dict) for table in plugins.values()):
        return None
    return data


def _check_ours(dropin_path, dropin_text, name):
    """The drop-in's record if it is ours (or one to take over) and for this runtime; fail otherwise.

    A drop-in that nvidia-ctk or the GPU Operator's toolkit wrote for this runtime is
    taken over: the record returned carries its text under ``taken_over``, so that
    its settings are kept and state=absent can put it back.
    """
    if dropin_text is None:
        return None
    record = dropin_record(dropin_text)
    if record is None:
        if _earlier_dropin(dropin_text, name) is not None:
            return {"runtime": name, "edits": [], "taken_over": {"text": dropin_text, "loaded": None}}
        raise ConfigError(
            "%s exists and was not written by %s, nor is it a drop-in of nvidia-ctk or the GPU Operator for runtime %r "
            "(version and CRI plugin tables only): move it away or choose another dropin_path; nothing was changed."
            % (dropin_path, MARKER, name)
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
    """(runtimes table to write, runtime given default_runtime_options, the new runtime) from the effective CRI table.

    As nvidia-ctk does: the new runtime starts from a copy of the default runtime
    (not one of NVIDIA's, not itself), else runc, else crun, and an empty or
    missing runtime_type counts as runc v2, as it does for containerd. A table of
    the same name already there is kept, with the options it lacks from the copy.
    """
    where = "plugins.%s" % toml_rw.format_key(CRI_PLUGIN_IDS[version])
    name = params["name"]
    ctd = _table(cri, "containerd", where) or {}
    runtimes = _table(ctd, "runtimes", where + ".containerd")
    if runtimes is not None:
        for rt_name, table in runtimes.items():
            if not isinstance(table, dict):
                raise ConfigError("%s.containerd.runtimes.%s must be a table; nothing was changed" % (where, rt_name))
    if runtimes is None:
        runtimes = _default_runtimes(defaults(), version)
    elif plan.plugin_merge == "deep":
        # containerd 2.1 lays the files' runtimes over its built-in ones, so runc stays.
        runtimes = deep_merge(_default_runtimes(defaults(), version), runtimes)
    else:
        runtimes = copy.deepcopy(runtimes)
    default_name = ctd.get("default_runtime_name") or "runc"
    inherit_default = not default_name.startswith("nvidia") and default_name != name
    candidates = [default_name] if inherit_default else []
    candidates += [n for n in ("runc", "crun") if n not in candidates]
    base_name = next((n for n in candidates if n in runtimes), None)
    # default_runtime_options go to the default runtime, or to the one inherited from
    # when the default is NVIDIA's own (a node where nvidia-ctk set it as default).
    target = default_name if inherit_default else base_name
    options = params.get("default_runtime_options") or {}
    if options:
        if target in runtimes:
            _options(runtimes[target], where).update(options)
        else:
            plan.warnings.append(
                "the runtime %r is not defined, so default_runtime_options were not applied" % (target or default_name)
            )
    existing = runtimes.get(name)
    if base_name is None:
        plan.warnings.append(
            "no %s runtime to inherit options from; %s gets only its own"
            % (" or ".join(repr(n) for n in candidates), name)
        )
        base = {}
    else:
        base = runtimes[base_name]
    runtime = copy.deepcopy(base) if _shim(base) == params["runtime_type"] else {}
    if existing is not None and existing is not base:
        if _shim(existing) == params["runtime_type"]:
            # Its own table, with the options it lacks from the base: containerd 2.1 shows the
            # fields a file leaves out as zero values, not as the built-in runc's.
            runtime = deep_merge({"options": runtime["options"]} if "options" in runtime else {}, existing)
        else:
            plan.warnings.append(
                "%s was a runtime of type %r; it is replaced by one of type %r" % (name, _shim(existing), params["runtime_type"])
            )
    runtime["runtime_type"] = params["runtime_type"]
    if params.get("binary_name"):
        _options(runtime, where)["BinaryName"] = params["binary_name"]
    if options and target in runtimes and target != name and _shim(runtime) == _shim(runtimes[target]):
        # Over a table of the same name, too: the node's option wins over a stale copy.
        _options(runtime, where).update(options)
    runtimes[name] = runtime
    return runtimes, target, runtime


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
    taken = dict(record["taken_over"]) if record and isinstance(record.get("taken_over"), dict) else None

    doc = parse_config(config_path, main_text) if main_text is not None else None
    covered = False
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
    earlier = _taken_over_data(taken, covered, version, dropin_path, config_path)
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

    # A drop-in taken over counts as loaded just before ours: what it set stays set.
    effective = merge([item.data for item in before] + ([earlier] if earlier else []), semantics)
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
    if earlier:
        data = deep_merge(earlier, data)

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
    if taken:
        record["taken_over"] = taken
        if dropin_record(dropin_text) is None:
            plan.warnings.append(
                "%s was written by another tool (nvidia-ctk or the GPU Operator's toolkit): taken over%s; "
                "state=absent puts it back as it was" % (dropin_path, " with every setting it made" if earlier else
                                                         " (config.toml did not import it, so none of its settings were in effect)")
            )
    plan.dropin_after = render_dropin(data, record, semantics.plugin_merge)
    return plan


def _taken_over_data(taken, covered, version, dropin_path, config_path):
    """The settings of a drop-in taken over that containerd loaded, or None.

    ``taken["loaded"]`` is decided at the take-over (did config.toml import the
    file then?) and kept in our record, so later runs plan the same drop-in.
    """
    if not taken:
        return None
    if taken.get("loaded") is None:
        taken["loaded"] = bool(covered)
    if not taken["loaded"]:
        return None
    data = parse_config(dropin_path + " (as the earlier tool wrote it)", taken.get("text", ""))
    earlier_version = config_version(data.data, dropin_path)
    if earlier_version != version:
        raise ConfigError(
            "%s, written by another tool, is config version %d but %s is version %d: containerd merges files before it "
            "migrates them, so this node already loses settings (an installer that generated it from `containerd config "
            "dump` does this). Fix or remove that file; nothing was changed." % (dropin_path, earlier_version, config_path, version)
        )
    return data.data


def plan_absent(params, main_text, dropin_text):
    """Undo plan_present: drop the import entry (and lines we added), delete the drop-in."""
    config_path, dropin_path = params["config_path"], params["dropin_path"]
    plan = Plan()
    plan.main_before, plan.dropin_before = main_text, dropin_text
    record = _check_ours(dropin_path, dropin_text, params["name"])
    edits = set(record.get("edits", [])) if record else set()
    taken = record.get("taken_over") if record else None
    if isinstance(taken, dict):
        # Undo exactly: the earlier tool's file comes back, with the runtime it registered.
        plan.dropin_after = taken.get("text")
        plan.warnings.append(
            "%s is %s as nvidia-ctk or the GPU Operator's toolkit wrote it, so runtime %r stays registered through it; "
            "delete that file to remove it" % (dropin_path, "left" if dropin_record(dropin_text) is None else "put back", params["name"])
        )
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
