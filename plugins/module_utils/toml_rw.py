# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small TOML 1.0 reader and writer for containerd configuration files.

Why our own: modules run on the node's system Python without pip installs, and
that Python ranges from 3.6 (EL8) to 3.13 (Debian 13). Python 3.11+ has tomllib
for reading but no writer anywhere in the standard library, and 3.6-3.10 have
neither. This module reads all of TOML 1.0 except dates and times (containerd
has no setting of that type; they fail with a clear message) and writes the
same value types back.

``parse`` also records where each key/value and table header sits in the
text, so a caller can change one key (containerd's ``imports``, a setting of
the NVIDIA container toolkit's config.toml) and keep every other byte of a
user's file, comments and layout included: :func:`set_value` does that.
"""

from __future__ import absolute_import, division, print_function

import copy
import math
import re

from ansible_collections.gpunode.nvidia.plugins.module_utils.secret_mask import is_secret_key
from ansible_collections.gpunode.nvidia.plugins.module_utils.toml_lex import ESCAPES, HEX_DIGITS, Lexer

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_DEC_INT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)\Z")
_PREFIXED_INT = {
    "0x": (re.compile(r"0x[0-9A-Fa-f](_?[0-9A-Fa-f])*\Z"), 16),
    "0o": (re.compile(r"0o[0-7](_?[0-7])*\Z"), 8),
    "0b": (re.compile(r"0b[01](_?[01])*\Z"), 2),
}
_FLOAT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)((\.[0-9](_?[0-9])*)([eE][+-]?[0-9](_?[0-9])*)?|[eE][+-]?[0-9](_?[0-9])*)\Z")
_SPECIAL_FLOAT = re.compile(r"[+-]?(inf|nan)\Z")
_DATE_OR_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2})")

# Table flags, kept per table object (by id) while parsing.
_EXPLICIT = 1  # defined by a [header], or by dotted keys in an earlier section
_FROZEN = 2  # an inline table: complete as written


class TomlError(ValueError):
    """Invalid or unsupported TOML; the message names the line and column."""

    def __init__(self, message, text=None, pos=None):
        self.line = self.column = None
        if text is not None and pos is not None:
            self.line = text.count("\n", 0, pos) + 1
            self.column = pos - (text.rfind("\n", 0, pos) + 1) + 1
            message = "%s (line %d, column %d)" % (message, self.line, self.column)
        super(TomlError, self).__init__(message)


class EditError(ValueError):
    """A change that cannot be made in place; the text is left as it was."""


class KeySpan(object):
    """Where one ``key = value`` sits in the text.

    ``start`` is the start of its line, ``value_start``/``value_end`` bound the
    value, ``end`` is just past the line's newline; ``items`` holds the
    (start, end) of each element when the value is an array.
    """

    def __init__(self, key, start, value_start, value_end, end, *, items=None):
        self.key = key
        self.start = start
        self.value_start = value_start
        self.value_end = value_end
        self.end = end
        self.items = items


class TableSpan(object):
    """Where the section of one ``[table]`` header (or the top level) sits.

    ``start``/``header_end`` bound the header line (0/0 for the top level),
    ``body_end`` is just past the section's last ``key = value`` line (the
    header's end when it has none; None for a top level without keys), and
    ``last_key`` is the start of that last key line, or None.
    """

    def __init__(self, path, start, header_end):
        self.path = path
        self.start = start
        self.header_end = header_end
        self.body_end = header_end if path else None
        self.last_key = None


class Document(object):
    """A parsed file: ``data`` (dicts, lists, scalars) and where things sit.

    ``spans``: top-level ``key = value`` lines by key. ``key_spans``: every
    ``key = value`` line written with a single key under the top level or a
    ``[table]`` header, by its full path (a tuple of keys). ``tables``: the
    sections of the top level (path ``()``) and of each ``[table]`` header.
    ``forms``: paths written in a form that cannot be edited line by line
    (dotted keys, inline tables, arrays of tables), each with (form, offset).
    """

    def __init__(self, data, spans, first_table, *, text="", tables=None, key_spans=None, forms=None):
        self.data = data
        self.spans = spans
        # Offset of the first [table] line: top-level keys must go before it.
        self.first_table = first_table
        self.text = text
        self.tables = tables or {}
        self.key_spans = key_spans or {}
        self.forms = forms or {}

    def line_of(self, pos):
        """The line number (from 1) of offset ``pos``."""
        return self.text.count("\n", 0, pos) + 1

    def key_line(self, path):
        """The line where the key at ``path`` is written, or None when it is not known."""
        span = self.key_spans.get(tuple(path))
        if span is not None:
            return self.line_of(span.start)
        form = self.forms.get(tuple(path))
        if form is not None:
            return self.line_of(form[1])
        table = self.tables.get(tuple(path))
        return self.line_of(table.start) if table is not None and path else None


def loads(text):
    """Parse TOML text into dicts, lists, str, int, float and bool."""
    return parse(text).data


def parse(text):
    """Parse TOML text into a Document."""
    return _Parser(text).parse()


class _Parser(Lexer):
    """The strict reader: keys and strings are read by Lexer, checked here (check_char, escape)."""

    def __init__(self, text):
        if not isinstance(text, str):
            raise TypeError("TOML text must be str")
        super(_Parser, self).__init__(text)
        self.flags = {}
        self.aot_ids = set()  # lists created by [[array of tables]]
        self.pending = []  # tables made by dotted keys in the current section
        self.spans = {}
        self.first_table = None
        self.section = ()  # path of the current [table] section
        self.tables = {(): TableSpan((), 0, 0)}
        self.section_span = self.tables[()]  # None inside an array of tables
        self.key_spans = {}
        self.forms = {}
        self.aot_paths = set()
        self.value_keys = []  # the key of each value being read, innermost last

    # ---- low-level scanning ----
    def error(self, message, pos=None):
        return TomlError(message, self.s, self.i if pos is None else pos)

    def shown(self, text, quote=True):
        """A piece of the value being read, for an error message: as written, unless a secret key holds it."""
        secret = [key for key in self.value_keys if is_secret_key(key)]
        if secret:
            return "(not shown: %s holds a secret)" % format_key(secret[-1])
        return repr(text) if quote else text

    def skip_comment(self):
        if self.peek() == "#":
            while self.i < self.n and self.s[self.i] != "\n":
                c = self.s[self.i]
                if (c < " " and c not in "\t\r") or c == "\x7f":
                    raise self.error("control character in a comment")
                self.i += 1

    def skip_blank(self):
        """Whitespace, comments and new lines (between statements and array items)."""
        while self.i < self.n:
            self.skip_ws()
            self.skip_comment()
            if self.i < self.n and self.at_newline():
                self.skip_newline()
            else:
                return

    def end_of_line(self):
        self.skip_ws()
        self.skip_comment()
        if self.i < self.n:
            if not self.at_newline():
                raise self.error("unexpected text after the value")
            self.skip_newline()

    def line_start(self, pos):
        return self.s.rfind("\n", 0, pos) + 1

    # ---- statements ----
    def parse(self):
        root = {}
        self.flags[id(root)] = _EXPLICIT
        current = root
        while True:
            self.skip_blank()
            if self.i >= self.n:
                break
            if self.peek() == "[":
                if self.first_table is None:
                    self.first_table = self.i
                self.finish_section()
                pos = self.i
                array = self.peek(1) == "["
                if array:
                    current, keys = self.array_table_header(root)
                else:
                    current, keys = self.table_header(root)
                self.end_of_line()
                self.open_section(tuple(keys), array, pos)
            else:
                start = self.line_start(self.i)
                keys, value_start, items, value = self.key_value(current)
                value_end = self.i
                self.end_of_line()
                self.record_key(keys, KeySpan(keys[-1], start, value_start, value_end, self.i, items=items), value)
        return Document(root, self.spans, self.n if self.first_table is None else self.first_table,
                        text=self.s, tables=self.tables, key_spans=self.key_spans, forms=self.forms)

    def open_section(self, path, array, pos):
        self.section = path
        if array:
            self.aot_paths.add(path)
            self.forms.setdefault(path, ("an array of tables", pos))
        if any(path[:i] in self.aot_paths for i in range(1, len(path) + 1)):
            # Inside an element of an array of tables: no path names it.
            self.section_span = None
        else:
            self.section_span = self.tables[path] = TableSpan(path, self.line_start(pos), self.i)

    def record_key(self, keys, span, value):
        if self.section_span is None:
            return
        full = self.section + tuple(keys)
        if not self.section and len(keys) == 1:
            self.spans[keys[0]] = span
        if len(keys) == 1:
            self.key_spans[full] = span
        else:
            for i in range(len(self.section) + 1, len(full) + 1):
                self.forms.setdefault(full[:i], ("dotted keys", span.start))
        if isinstance(value, dict):
            self.forms.setdefault(full, ("an inline table", span.value_start))
        self.section_span.body_end = span.end
        self.section_span.last_key = span.start

    def finish_section(self):
        # Tables made by dotted keys are closed once their section ends.
        for table in self.pending:
            self.flags[id(table)] = self.flags.get(id(table), 0) | _EXPLICIT
        self.pending = []

    def walk_header(self, root, keys, pos):
        """Follow the header's keys but the last, creating implicit tables."""
        table = root
        for key in keys[:-1]:
            if key not in table:
                table[key] = {}
                self.flags[id(table[key])] = 0
            nxt = table[key]
            if isinstance(nxt, list) and id(nxt) in self.aot_ids:
                nxt = nxt[-1]
            if not isinstance(nxt, dict):
                raise self.error("key %r is already a value, not a table" % key, pos)
            if self.flags.get(id(nxt), 0) & _FROZEN:
                raise self.error("table %r is an inline table and cannot be extended" % key, pos)
            table = nxt
        return table

    def table_header(self, root):
        pos = self.i
        keys = self.header_keys(False)
        parent = self.walk_header(root, keys, pos)
        last = keys[-1]
        if last in parent:
            table = parent[last]
            if not isinstance(table, dict) or self.flags.get(id(table), 0) & (_EXPLICIT | _FROZEN):
                raise self.error("table [%s] is defined twice" % ".".join(keys), pos)
        else:
            table = parent[last] = {}
        self.flags[id(table)] = _EXPLICIT
        return table, keys

    def array_table_header(self, root):
        pos = self.i
        keys = self.header_keys(True)
        parent = self.walk_header(root, keys, pos)
        last = keys[-1]
        if last in parent:
            array = parent[last]
            if not (isinstance(array, list) and id(array) in self.aot_ids):
                raise self.error("[[%s]] names a key that is not an array of tables" % ".".join(keys), pos)
        else:
            array = parent[last] = []
            self.aot_ids.add(id(array))
        table = {}
        self.flags[id(table)] = _EXPLICIT
        array.append(table)
        return table, keys

    def key_value(self, table, inline=False):
        pos = self.i
        keys = self.key_equals()
        value_start = self.i
        self.value_keys.append(keys[-1])
        try:
            value, items = self.value()
        finally:
            self.value_keys.pop()
        for key in keys[:-1]:
            if key not in table:
                table[key] = {}
                self.flags[id(table[key])] = 0
                if not inline:
                    self.pending.append(table[key])
            nxt = table[key]
            if not isinstance(nxt, dict):
                raise self.error("key %s is already a value, not a table" % ".".join(keys), pos)
            # Inside an inline table everything is new; outside, a dotted key may
            # only extend tables that it made itself in this same section.
            if self.flags.get(id(nxt), 0) & (_EXPLICIT | _FROZEN):
                raise self.error("dotted key %s cannot add to a table defined elsewhere" % ".".join(keys), pos)
            table = nxt
        if keys[-1] in table:
            raise self.error("key %s is defined twice" % ".".join(keys), pos)
        table[keys[-1]] = value
        return keys, value_start, items, value

    # ---- values ----
    def value(self):
        """Return (value, item spans or None)."""
        c = self.peek()
        if c in ('"', "'"):
            return self.string(), None
        if c == "[":
            return self.array()
        if c == "{":
            return self.inline_table(), None
        if c == "":
            raise self.error("expected a value, found the end of the file")
        return self.bare_value(), None

    def bare_value(self):
        start = self.i
        token = self.bare_token()
        if token in ("true", "false"):
            return token == "true"
        if _DATE_OR_TIME.match(token):
            raise self.error("dates and times are not supported (containerd has no such setting)", start)
        if _DEC_INT.match(token):
            body = token.lstrip("+-")
            if len(body) > 1 and body[0] == "0":
                raise self.error("leading zeros are not allowed in %s" % self.shown(token), start)
            return int(token.replace("_", ""))
        prefixed = _PREFIXED_INT.get(token[:2])
        if prefixed and prefixed[0].match(token):
            return int(token[2:].replace("_", ""), prefixed[1])
        if _FLOAT.match(token):
            return float(token.replace("_", ""))
        if _SPECIAL_FLOAT.match(token):
            return float(token)
        if not token:
            raise self.error("expected a value", start)
        raise self.error("invalid value %s" % self.shown(token), start)

    def check_char(self, c):
        if (c < " " and c != "\t") or c == "\x7f":
            raise self.error("control character %s must be escaped in a string" % self.shown(c))

    def escape(self, multiline):
        """At a backslash inside a basic string: return the text it stands for."""
        self.i += 1
        c = self.peek()
        if c in ESCAPES:
            self.i += 1
            return ESCAPES[c]
        if c in ("u", "U"):
            width = 4 if c == "u" else 8
            digits = self.s[self.i + 1:self.i + 1 + width]
            if len(digits) != width or not all(d in HEX_DIGITS for d in digits):
                raise self.error("\\%s needs %d hex digits" % (c, width))
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.error("escape %s is not a Unicode scalar value" % self.shown("\\" + c + digits, quote=False))
            self.i += 1 + width
            return chr(code)
        if multiline:
            # A backslash at the end of a line trims it and leading whitespace after it.
            j = self.i
            while j < self.n and self.s[j] in " \t":
                j += 1
            if j < self.n and (self.s[j] == "\n" or self.s.startswith("\r\n", j)):
                self.i = j
                while self.i < self.n and (self.s[self.i] in " \t\n" or self.s.startswith("\r\n", self.i)):
                    self.i += 1
                return ""
        raise self.error("unknown escape %s" % self.shown("\\" + c, quote=False))

    def array(self):
        self.i += 1
        values = []
        items = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.i += 1
                return values, items
            start = self.i
            value, _items = self.value()
            values.append(value)
            items.append((start, self.i))
            self.skip_blank()
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c == "]":
                self.i += 1
                return values, items
            else:
                raise self.error("expected ',' or ']' in the array")

    def inline_table(self):
        self.i += 1
        table = {}
        self.flags[id(table)] = _FROZEN
        self.skip_ws()
        if self.peek() == "}":
            self.i += 1
            return table
        while True:
            self.key_value(table, inline=True)
            self.skip_ws()
            c = self.peek()
            if c == ",":
                self.i += 1
                self.skip_ws()
            elif c == "}":
                self.i += 1
                return table
            else:
                raise self.error("expected ',' or '}' in the inline table (inline tables stay on one line)")


# ---- writing ----


def format_key(key):
    """A key as TOML writes it: bare when it can be, else a basic string."""
    return key if BARE_KEY.match(key) else format_string(key)


def format_string(text):
    out = ['"']
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[c])
        elif c < " " or c == "\x7f":
            out.append("\\u%04x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def format_value(value):
    """One value in inline form (arrays and tables on one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join("%s = %s" % (format_key(k), format_value(v)) for k, v in value.items()) + " }"
    raise TypeError("cannot write %s as TOML" % type(value).__name__)


def _is_table_array(value):
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps(data, indent="  "):
    """Write a dict as TOML: plain keys first, then [tables] indented by depth.

    A table that holds only sub-tables gets no header of its own (TOML creates
    it implicitly); an empty table keeps its header, since an empty table can
    mean something (containerd reads an empty ``runtimes`` as "no runtimes").
    """
    lines = []
    _write_table(lines, [], data, 0, indent, array_item=False)
    return "\n".join(lines).lstrip("\n") + "\n" if lines else ""


def _write_table(lines, path, table, depth, indent, *, array_item):
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    header_indent = indent * max(depth - 1, 0)
    if array_item:
        lines.append("")
        lines.append("%s[[%s]]" % (header_indent, ".".join(format_key(k) for k in path)))
    elif path and (plain or not table):
        lines.append("")
        lines.append("%s[%s]" % (header_indent, ".".join(format_key(k) for k in path)))
    key_indent = indent * depth
    for key, value in plain:
        lines.append("%s%s = %s" % (key_indent, format_key(key), format_value(value)))
    for key, value in table.items():
        if isinstance(value, dict):
            _write_table(lines, path + [key], value, depth + 1, indent, array_item=False)
        elif _is_table_array(value):
            for item in value:
                _write_table(lines, path + [key], item, depth + 1, indent, array_item=True)


# ---- editing one key in place ----


def dotted(path):
    """A key path as TOML writes it: ``nvidia-container-runtime.modes.cdi``."""
    return ".".join(format_key(k) for k in path)


def type_name(value):
    """What a value is, in TOML's words: a string, a boolean, ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a %s" % type(value).__name__


def strict_equal(a, b):
    """Equality that tells true from 1 and 1 from 1.0, as TOML does."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def lookup(doc, path):
    """(found, value) of the key at ``path`` (a tuple of keys) in a Document or in parsed data.

    Raises EditError when a table on the way is not a table (a value, an
    array, an array of tables), naming it (and its line, given a Document).
    """
    if not isinstance(doc, Document):
        doc = Document(doc, {}, 0)
    node = doc.data
    for i, key in enumerate(path):
        if not isinstance(node, dict):
            prefix = path[:i]
            form = doc.forms.get(prefix)
            what = form[0] if form and form[0] == "an array of tables" else type_name(node)
            line = doc.key_line(prefix) if doc.text else None
            raise EditError("%s is %s%s, not a table, so it has no key %s"
                            % (dotted(prefix), what, " (line %d)" % line if line else "", format_key(key)))
        if key not in node:
            return False, None
        node = node[key]
    return True, node


def _form_of(doc, path):
    """The first of ``path`` and the tables above it that is written as dotted keys, inline or as an array."""
    for i in range(1, len(path) + 1):
        form = doc.forms.get(path[:i])
        if form is not None:
            return path[:i], form
    return None, None


def _line_indent(text, pos):
    start = text.rfind("\n", 0, pos) + 1
    end = start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[start:end]


def _top_level_insert_at(doc):
    """Where a new top-level key goes in a file without any: before the first table and its comments."""
    text = doc.text
    if doc.first_table >= len(text):
        return len(text), False
    at = text.rfind("\n", 0, doc.first_table) + 1
    while at > 0:
        prev = text.rfind("\n", 0, at - 1) + 1
        if not text[prev:at].strip().startswith("#"):
            break
        at = prev
    return at, True


def set_value(text, path, value):
    """``text`` with the key at ``path`` (a tuple of keys) set to ``value``; every other byte kept.

    A key written as ``key = value`` under its ``[table]`` header (or at the top
    level) gets its value text replaced. A missing key is added after the last
    key line of its table's section (a commented-out ``#key = ...`` line stays
    as it is), and a missing table is appended as a new ``[table]`` section.
    A key that holds the value already leaves the text as it is. Raises
    EditError when the key or its table is written in a form that cannot be
    edited line by line (dotted keys, an inline table, an array of tables),
    when it is a table, and when the result would not read back as the
    original plus exactly this change; raises TomlError for invalid text.
    """
    path = tuple(path)
    if not path or not all(isinstance(k, str) for k in path):
        raise EditError("a key path is a non-empty sequence of strings, got %r" % (path,))
    try:
        literal = format_value(value)
    except TypeError as exc:
        raise EditError("%s: %s" % (dotted(path), exc)) from None
    doc = parse(text)
    found, current = lookup(doc, path)
    if found and isinstance(current, dict):
        raise EditError("%s is a table (line %s), not a value" % (dotted(path), doc.key_line(path) or "?"))
    if found and strict_equal(current, value):
        return text
    newline = "\r\n" if "\r\n" in text else "\n"
    line = "%s = %s" % (format_key(path[-1]), literal)
    span = doc.key_spans.get(path)
    table = doc.tables.get(path[:-1])
    if span is not None:
        new = text[:span.value_start] + literal + text[span.value_end:]
    elif found or (table is None and _form_of(doc, path[:-1])[0] is not None):
        where, form = _form_of(doc, path)
        raise EditError(
            "%s is written as %s%s, which cannot be edited in place: write it as `%s = ...` under %s, "
            "or change it by hand"
            % (dotted(where or path), form[0] if form else "part of another table",
               " (line %d)" % doc.line_of(form[1]) if form else "", format_key(path[-1]),
               "a [%s] header" % dotted(path[:-1]) if path[:-1] else "the top level")
        )
    elif table is not None:
        if table.body_end is None:
            at, before_table = _top_level_insert_at(doc)
            indent, after = "", newline if before_table else ""
        else:
            at, after = table.body_end, ""
            indent = _line_indent(text, table.last_key if table.last_key is not None else table.start)
        prefix = newline if at > 0 and text[at - 1] != "\n" else ""
        new = text[:at] + prefix + indent + line + newline + after + text[at:]
    else:
        new = text
        if new and not new.endswith("\n"):
            new += newline
        if new.strip():
            new += newline
        new += "[%s]%s%s%s" % (dotted(path[:-1]), newline, line, newline)
    return _checked(doc, new, path, value)


def _checked(doc, new, path, value):
    """``new`` when it reads as the original plus exactly ``path = value``; EditError otherwise."""
    expected = copy.deepcopy(doc.data)
    node = expected
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = list(value) if isinstance(value, tuple) else value
    try:
        data = parse(new).data
    except TomlError as exc:
        raise EditError(
            "setting %s in place would make the file invalid (%s); it was left as it was" % (dotted(path), exc)
        ) from None
    if not strict_equal(data, expected):
        raise EditError("setting %s in place would change other settings too; the file was left as it was" % dotted(path))
    return new


def set_values(text, changes):
    """Apply set_value for each (path, value) in order; returns the new text."""
    for path, value in changes:
        text = set_value(text, path, value)
    return text
