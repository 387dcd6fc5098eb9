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

``parse`` also records where each top-level key/value sits in the text, so a
caller can change one key (containerd's ``imports``) and keep every other byte
of a user's file, comments and layout included.
"""

from __future__ import absolute_import, division, print_function

import math
import re

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_BARE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_DEC_INT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)\Z")
_PREFIXED_INT = {
    "0x": (re.compile(r"0x[0-9A-Fa-f](_?[0-9A-Fa-f])*\Z"), 16),
    "0o": (re.compile(r"0o[0-7](_?[0-7])*\Z"), 8),
    "0b": (re.compile(r"0b[01](_?[01])*\Z"), 2),
}
_FLOAT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)((\.[0-9](_?[0-9])*)([eE][+-]?[0-9](_?[0-9])*)?|[eE][+-]?[0-9](_?[0-9])*)\Z")
_SPECIAL_FLOAT = re.compile(r"[+-]?(inf|nan)\Z")
_DATE_OR_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2})")
# Characters that end a bare value (number, boolean) on its line.
_VALUE_END = frozenset(" \t\r\n,]}#")

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


class KeySpan(object):
    """Where one top-level ``key = value`` sits in the text.

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


class Document(object):
    """A parsed file: ``data`` (dicts, lists, scalars) and top-level key spans."""

    def __init__(self, data, spans, first_table):
        self.data = data
        self.spans = spans
        # Offset of the first [table] line: top-level keys must go before it.
        self.first_table = first_table


def loads(text):
    """Parse TOML text into dicts, lists, str, int, float and bool."""
    return parse(text).data


def parse(text):
    """Parse TOML text into a Document."""
    return _Parser(text).parse()


class _Parser(object):
    def __init__(self, text):
        if not isinstance(text, str):
            raise TypeError("TOML text must be str")
        self.s = text
        self.n = len(text)
        self.i = 0
        self.flags = {}
        self.aot_ids = set()  # lists created by [[array of tables]]
        self.pending = []  # tables made by dotted keys in the current section
        self.spans = {}
        self.first_table = None

    # ---- low-level scanning ----
    def error(self, message, pos=None):
        return TomlError(message, self.s, self.i if pos is None else pos)

    def peek(self, offset=0):
        j = self.i + offset
        return self.s[j] if j < self.n else ""

    def skip_ws(self):
        while self.i < self.n and self.s[self.i] in " \t":
            self.i += 1

    def skip_comment(self):
        if self.peek() == "#":
            while self.i < self.n and self.s[self.i] != "\n":
                c = self.s[self.i]
                if (c < " " and c not in "\t\r") or c == "\x7f":
                    raise self.error("control character in a comment")
                self.i += 1

    def at_newline(self):
        return self.peek() == "\n" or self.s.startswith("\r\n", self.i)

    def skip_newline(self):
        if self.peek() == "\n":
            self.i += 1
        elif self.s.startswith("\r\n", self.i):
            self.i += 2
        else:
            raise self.error("expected a new line")

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
                if self.peek(1) == "[":
                    current = self.array_table_header(root)
                else:
                    current = self.table_header(root)
            else:
                start = self.line_start(self.i)
                keys, value_start, items = self.key_value(current)
                if current is root and len(keys) == 1:
                    value_end = self.i
                    self.end_of_line()
                    self.spans[keys[0]] = KeySpan(keys[0], start, value_start, value_end, self.i, items=items)
                    continue
            self.end_of_line()
        return Document(root, self.spans, self.n if self.first_table is None else self.first_table)

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
        self.i += 1
        self.skip_ws()
        keys = self.key()
        self.skip_ws()
        if self.peek() != "]":
            raise self.error("expected ']' to close the table header")
        self.i += 1
        parent = self.walk_header(root, keys, pos)
        last = keys[-1]
        if last in parent:
            table = parent[last]
            if not isinstance(table, dict) or self.flags.get(id(table), 0) & (_EXPLICIT | _FROZEN):
                raise self.error("table [%s] is defined twice" % ".".join(keys), pos)
        else:
            table = parent[last] = {}
        self.flags[id(table)] = _EXPLICIT
        return table

    def array_table_header(self, root):
        pos = self.i
        self.i += 2
        self.skip_ws()
        keys = self.key()
        self.skip_ws()
        if not self.s.startswith("]]", self.i):
            raise self.error("expected ']]' to close the array of tables header")
        self.i += 2
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
        return table

    def key_value(self, table, inline=False):
        pos = self.i
        keys = self.key()
        self.skip_ws()
        if self.peek() != "=":
            raise self.error("expected '=' after the key")
        self.i += 1
        self.skip_ws()
        value_start = self.i
        value, items = self.value()
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
        return keys, value_start, items

    # ---- keys ----
    def key(self):
        keys = [self.simple_key()]
        while True:
            self.skip_ws()
            if self.peek() != ".":
                return keys
            self.i += 1
            self.skip_ws()
            keys.append(self.simple_key())

    def simple_key(self):
        c = self.peek()
        if c == '"':
            if self.s.startswith('"""', self.i):
                raise self.error("a key cannot be a multi-line string")
            return self.basic_string()
        if c == "'":
            if self.s.startswith("'''", self.i):
                raise self.error("a key cannot be a multi-line string")
            return self.literal_string()
        start = self.i
        while self.i < self.n and self.s[self.i] in _BARE_CHARS:
            self.i += 1
        if self.i == start:
            raise self.error("expected a key")
        return self.s[start:self.i]

    # ---- values ----
    def value(self):
        """Return (value, item spans or None)."""
        c = self.peek()
        if c == '"':
            if self.s.startswith('"""', self.i):
                return self.multiline_string('"""'), None
            return self.basic_string(), None
        if c == "'":
            if self.s.startswith("'''", self.i):
                return self.multiline_string("'''"), None
            return self.literal_string(), None
        if c == "[":
            return self.array()
        if c == "{":
            return self.inline_table(), None
        if c == "":
            raise self.error("expected a value, found the end of the file")
        return self.bare_value(), None

    def bare_value(self):
        start = self.i
        while self.i < self.n and self.s[self.i] not in _VALUE_END:
            self.i += 1
        token = self.s[start:self.i]
        if token in ("true", "false"):
            return token == "true"
        if _DATE_OR_TIME.match(token):
            raise self.error("dates and times are not supported (containerd has no such setting)", start)
        if _DEC_INT.match(token):
            body = token.lstrip("+-")
            if len(body) > 1 and body[0] == "0":
                raise self.error("leading zeros are not allowed in %r" % token, start)
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
        raise self.error("invalid value %r" % token, start)

    def check_char(self, c):
        if (c < " " and c != "\t") or c == "\x7f":
            raise self.error("control character %r must be escaped in a string" % c)

    def escape(self, multiline):
        """At a backslash inside a basic string: return the text it stands for."""
        self.i += 1
        c = self.peek()
        if c in _ESCAPES:
            self.i += 1
            return _ESCAPES[c]
        if c in ("u", "U"):
            width = 4 if c == "u" else 8
            digits = self.s[self.i + 1:self.i + 1 + width]
            if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise self.error("\\%s needs %d hex digits" % (c, width))
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.error("\\%s%s is not a Unicode scalar value" % (c, digits))
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
        raise self.error("unknown escape \\%s" % c)

    def basic_string(self):
        self.i += 1
        out = []
        while True:
            if self.i >= self.n or self.at_newline():
                raise self.error("unterminated string")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                out.append(self.escape(False))
                continue
            self.check_char(c)
            out.append(c)
            self.i += 1

    def literal_string(self):
        self.i += 1
        start = self.i
        while True:
            if self.i >= self.n or self.at_newline():
                raise self.error("unterminated string")
            c = self.s[self.i]
            if c == "'":
                self.i += 1
                return self.s[start:self.i - 1]
            self.check_char(c)
            self.i += 1

    def multiline_string(self, delim):
        literal = delim == "'''"
        self.i += 3
        if self.at_newline():
            self.skip_newline()
        out = []
        while True:
            if self.i >= self.n:
                raise self.error("unterminated multi-line string")
            if self.s.startswith(delim, self.i):
                # Up to two quotes may sit right before the closing delimiter.
                run = 3
                while run < 5 and self.peek(run) == delim[0]:
                    run += 1
                out.append(delim[0] * (run - 3))
                self.i += run
                return "".join(out)
            c = self.s[self.i]
            if c == "\\" and not literal:
                out.append(self.escape(True))
                continue
            if c == "\n" or self.s.startswith("\r\n", self.i):
                out.append("\n")
                self.skip_newline()
                continue
            self.check_char(c)
            out.append(c)
            self.i += 1

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
