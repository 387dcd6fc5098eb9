# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""toolkit_config's edit: settings of the NVIDIA container toolkit's config.toml.

:func:`check_settings` turns the module's ``settings`` (dotted key -> value)
into key paths with values of the type the toolkit reads; :func:`plan`
computes the file's new text with toml_rw.set_value, so every setting, comment
and line the user had stays as it was. The known keys and types are those of
nvidia-container-toolkit's internal/config (1.17 to 1.20); keys it does not
know yet are written as given.
"""

from __future__ import absolute_import, division, print_function

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.gpunode.nvidia.plugins.module_utils import toml_rw
from ansible_collections.gpunode.nvidia.plugins.module_utils.secret_mask import is_secret_key, mask_data
# The project's reading of a TOML file: text or None, and a clear message for malformed TOML.
from ansible_collections.gpunode.nvidia.plugins.module_utils.containerd_config import ConfigError, parse_config

DEFAULT_PATH = "/etc/nvidia-container-runtime/config.toml"
MODE_KEY = ("nvidia-container-runtime", "mode")
# The runtime's modes; "auto" resolves to jit-cdi on NVML hosts (csv on Tegra).
MODES = ("auto", "legacy", "cdi", "csv", "jit-cdi")
# What logrus.ParseLevel accepts (case-insensitive); anything else logs at info with a warning.
LOG_LEVELS = ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace")

BOOL, STR, STR_LIST = "bool", "str", "list"
KNOWN = {
    "accept-nvidia-visible-devices-envvar-when-unprivileged": BOOL,
    "accept-nvidia-visible-devices-as-volume-mounts": BOOL,
    "disable-require": BOOL,
    "supported-driver-capabilities": STR,
    "swarm-resource": STR,
    "nvidia-container-cli.root": STR,
    "nvidia-container-cli.path": STR,
    "nvidia-container-cli.environment": STR_LIST,
    "nvidia-container-cli.debug": STR,
    "nvidia-container-cli.ldcache": STR,
    "nvidia-container-cli.ldconfig": STR,
    "nvidia-container-cli.load-kmods": BOOL,
    "nvidia-container-cli.no-cgroups": BOOL,
    "nvidia-container-cli.user": STR,
    "nvidia-container-runtime.debug": STR,
    "nvidia-container-runtime.log-level": STR,
    "nvidia-container-runtime.mode": STR,
    "nvidia-container-runtime.runtimes": STR_LIST,
    "nvidia-container-runtime.modes.cdi.default-kind": STR,
    "nvidia-container-runtime.modes.cdi.annotation-prefixes": STR_LIST,
    "nvidia-container-runtime.modes.cdi.spec-dirs": STR_LIST,
    "nvidia-container-runtime.modes.csv.mount-spec-path": STR,
    "nvidia-container-runtime.modes.legacy.cuda-compat-mode": STR,
    "nvidia-container-runtime-hook.path": STR,
    "nvidia-container-runtime-hook.skip-mode-detection": BOOL,
    "nvidia-ctk.path": STR,
}
# (choices, whether the toolkit ignores case): the runtime compares modes as written.
CHOICES = {
    "nvidia-container-runtime.mode": (MODES, False),
    "nvidia-container-runtime.log-level": (LOG_LEVELS, True),
}
TYPE_WORDS = {BOOL: "a boolean", STR: "a string", STR_LIST: "a list of strings"}
LDCONFIG_KEY = ("nvidia-container-cli", "ldconfig")
ALLOW_LDCONFIG_KEY = ("features", "allow-ldconfig-from-container")


def expected_type(name):
    """BOOL, STR or STR_LIST for a key the toolkit reads, None for one it does not know."""
    if name.startswith("features.") and name.count(".") == 1:
        return BOOL  # every feature flag is a boolean
    return KNOWN.get(name)


def _scalar(value):
    return isinstance(value, (str, bool, int, float))


def _convert(name, value):
    """(value as written, problem or None) for one setting."""
    kind = expected_type(name)
    if value is None:
        return None, "%s: no value (this module sets keys; it does not remove them)" % name
    if kind == BOOL:
        if isinstance(value, bool):
            return value, None
        if isinstance(value, (str, int)):
            try:
                return boolean(value, strict=True), None
            except TypeError:
                pass
        return None, "%s must be a boolean, got %r" % (name, value)
    if kind == STR:
        if not isinstance(value, str):
            return None, "%s must be a string, got %r" % (name, value)
        choices, any_case = CHOICES.get(name, (None, False))
        if choices and (value.lower() if any_case else value) not in choices:
            return None, "%s must be one of %s, got %r" % (name, ", ".join(choices), value)
        return value, None
    if kind == STR_LIST:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, "%s must be a list of strings, got %r" % (name, value)
        return list(value), None
    if _scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value)):
        return value, None
    return None, "%s: %s cannot be written as a TOML value (use a string, boolean, number or list of them)" % (
        name, toml_rw.type_name(value))


def check_settings(settings):
    """[(dotted name, key path, value)] from the module's ``settings``; ConfigError names every problem."""
    items, problems = [], []
    for name in sorted(settings):
        path = tuple(name.split("."))
        if not name or not all(path):
            problems.append("%r is not a dotted key such as nvidia-container-runtime.mode" % name)
            continue
        value, problem = _convert(name, settings[name])
        if problem:
            problems.append(problem)
            continue
        items.append((name, path, value))
    paths = set(path for _name, path, _value in items)
    for name, path, _value in items:
        for i in range(1, len(path)):
            if path[:i] in paths:
                problems.append("%s and %s cannot both be set: %s is a value, not a table"
                                % (".".join(path[:i]), name, ".".join(path[:i])))
    if problems:
        raise ConfigError("invalid settings: %s. Nothing was changed." % "; ".join(problems))
    return items


class Plan(object):
    """The file's text before (None: no file) and after, and what the settings became."""

    def __init__(self, before):
        self.before = before
        self.after = before
        self.changed_keys = []
        self.settings = {}
        self.mode = "auto"
        self.warnings = []

    @property
    def changed(self):
        return self.before != self.after


def _same_type(current, value):
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    for kinds in (int, float, str, (list, tuple), dict):
        if isinstance(current, kinds):
            return isinstance(value, kinds)
    return False


def _check_ldconfig(path, data):
    """The toolkit refuses an ldconfig from the container (no '@') unless the feature allows it."""
    found, ldconfig = toml_rw.lookup(data, LDCONFIG_KEY)
    _found, allow = toml_rw.lookup(data, ALLOW_LDCONFIG_KEY)
    if found and isinstance(ldconfig, str) and not ldconfig.startswith("@") and allow is not True:
        raise ConfigError(
            "nvidia-container-cli.ldconfig = %r would make the toolkit refuse %s: a path without a leading '@' "
            "is taken from the container, which needs features.allow-ldconfig-from-container = true. Use '@%s' for "
            "the host's ldconfig; nothing was changed." % (ldconfig, path, ldconfig)
        )


def plan(path, text, items, create=False):
    """What the file at ``path`` (``text``, None when missing) becomes with ``items`` set."""
    if text is None and not create:
        raise ConfigError(
            "%s does not exist. The NVIDIA container toolkit package (nvidia-container-toolkit-base) writes it with "
            "its defaults when it is installed: install the toolkit first, or set create=true to write a file that "
            "holds only these settings." % path
        )
    result = Plan(text)
    current = "" if text is None else text
    doc = parse_config(path, current)
    problems = []
    for name, key, value in items:
        try:
            found, old = toml_rw.lookup(doc, key)
        except toml_rw.EditError as exc:
            problems.append("cannot set %s: %s" % (name, exc))
            continue
        if found and not _same_type(old, value):
            line = doc.key_line(key)
            want = TYPE_WORDS.get(expected_type(name)) or toml_rw.type_name(value)
            if isinstance(old, dict):
                held = "as a table"
            elif is_secret_key(key[-1]):
                held = "as %s (its value not shown: a secret)" % toml_rw.type_name(old)
            else:
                held = "= %s, %s" % (toml_rw.format_value(mask_data(old)), toml_rw.type_name(old))
            problems.append("%s holds %s %s%s, where %s is wanted" % (
                path, name, held, " (line %d)" % line if line else "", want))
    if problems:
        raise ConfigError("%s. Fix the file by hand; nothing was changed." % "; ".join(problems))
    for name, key, value in items:
        try:
            new = toml_rw.set_value(current, key, value)
        except toml_rw.EditError as exc:
            raise ConfigError("cannot set %s in %s: %s. Nothing was changed." % (name, path, exc)) from None
        if new != current:
            result.changed_keys.append(name)
        current = new
    result.after = current
    data = parse_config(path, current).data
    if any(key in (LDCONFIG_KEY, ALLOW_LDCONFIG_KEY) for _name, key, _value in items):
        _check_ldconfig(path, data)
    for name, key, _value in items:
        result.settings[name] = toml_rw.lookup(data, key)[1]
    try:
        found, mode = toml_rw.lookup(data, MODE_KEY)
    except toml_rw.EditError:
        found, mode = False, None
    result.mode = mode if found else "auto"
    if result.mode not in MODES:
        result.warnings.append(
            "%s sets nvidia-container-runtime.mode = %s, which the runtime does not know (it knows %s)"
            % (path, toml_rw.format_value(mask_data(result.mode)), ", ".join(MODES))
        )
    return result
