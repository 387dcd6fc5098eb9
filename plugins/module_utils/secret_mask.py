# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret values kept out of what a module returns: diffs, tables, messages.

Why: containerd's config.toml often holds registry credentials
(``registry.configs."<host>".auth`` with ``username``, ``password``, ``auth``,
``identitytoken``; ``registry.headers`` with ``Authorization``), and before
containerd 2.1 containerd_runtime's drop-in carries a copy of that table. A
diff of those files, shown with ``--diff`` or kept in a registered result and
the logs, would print them in clear. Every module that returns the text or the
data of such a file masks it here, one rule for all (issue 16).

The rule is on key names (:func:`is_secret_key`, the last segment of a key):
the value of a secret key is replaced, the key stays, and the mask says only
whether the value changed between the two texts of a diff (:func:`mask_diff`).
Nothing is derived from a secret: no hash, no length, no prefix. Comments are
masked too (a commented-out ``# password = "old"`` is still a password), to the
end of their line; over-masking is fine, leaking is not. Texts that are not
valid TOML are masked as well as they can be read, erring on the side of
masking: the value of a secret key that cannot be read is masked to the end of
the text.
"""

from __future__ import absolute_import, division, print_function

import re

NOTE = " (secret values masked)"
UNCHANGED = '"<masked, unchanged>"'
CHANGED_OLD = '"<masked, changed: old>"'
CHANGED_NEW = '"<masked, changed: new>"'
ADDED = '"<masked, added>"'
REMOVED = '"<masked, removed>"'
# What a secret value becomes in returned data and messages.
MASKED = "<masked>"

_EXACT = frozenset(("auth", "authorization"))
_PARTS = ("password", "passwd", "token", "secret", "credential", "apikey", "api_key", "api-key", "private_key", "privatekey")
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_VALUE_END = frozenset(" \t\r\n,]}#")
# In free text (comments, messages): a key, perhaps quoted (or quoted inside a JSON string), then = or :.
_FREE_KEY = re.compile(r"""(\\?)([A-Za-z0-9_-]+)(?:\\?["'])?[ \t]*[=:]""")


def is_secret_key(name):
    """Whether a key's value is a secret, by the key's name (its last segment, as decoded)."""
    if not isinstance(name, str):
        return False
    name = name.lower()
    return name in _EXACT or any(part in name for part in _PARTS)


def mask_data(value):
    """A copy of parsed data (dicts, lists, scalars) with the value of every secret key replaced by MASKED.

    A table under a secret key is gone through like any other, so its own
    secret keys are masked and the rest kept.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if is_secret_key(key) and not isinstance(item, dict):
                out[key] = MASKED
            else:
                out[key] = mask_data(item)
        return out
    if isinstance(value, (list, tuple)):
        return [mask_data(item) for item in value]
    return value


def mask_text(text):
    """Free text (an error message, a command's output) with what follows ``secret-key =`` or ``:`` masked to the end of its line."""
    if not text:
        return text
    found = []
    _free(text, 0, len(text), (), found)
    out = text
    for start, end, _identity, _raw in reversed(found):
        out = out[:start] + MASKED + out[end:]
    return out


def mask_diff(before, after):
    """(masked before, masked after, number of values masked) for the two TOML texts of a diff.

    Either text may be None or empty (no file). The value of each secret key
    becomes a basic string that says how it compares with the same key in the
    other text: the same key is the same table (or section) path, the same
    dotted key path (enclosing inline-table keys included) and the same place
    among keys that share those. Equal values give UNCHANGED on both sides (so
    those lines do not differ), different ones CHANGED_OLD and CHANGED_NEW;
    a key only after is ADDED, only before REMOVED.
    """
    found_before = _scan(before or "")
    found_after = _scan(after or "")
    raw_before = dict((identity, raw) for _s, _e, identity, raw in found_before)
    raw_after = dict((identity, raw) for _s, _e, identity, raw in found_after)

    def replace(text, found, other, masks):
        """``text`` with each secret value replaced by masks[0] (the same in ``other``), [1] (changed) or [2] (missing)."""
        if text is None:
            return None
        for start, end, identity, raw in reversed(found):
            if identity not in other:
                mask = masks[2]
            elif other[identity] == raw:
                mask = masks[0]
            else:
                mask = masks[1]
            text = text[:start] + mask + text[end:]
        return text

    masked_before = replace(before, found_before, raw_after, (UNCHANGED, CHANGED_OLD, REMOVED))
    masked_after = replace(after, found_after, raw_before, (UNCHANGED, CHANGED_NEW, ADDED))
    return masked_before, masked_after, len(found_before) + len(found_after)


# ---- finding the secret values of a TOML text ----


class _Unreadable(Exception):
    """Text that does not read as TOML here; the caller falls back to free-text masking."""


def _line_end(text, pos):
    """End of the line at ``pos``, before its new line (and a CR before it)."""
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    if end > pos and text[end - 1] == "\r":
        end -= 1
    return end


def _free(text, start, end, header, found):
    """Mask, in text[start:end] (one line or a message), what follows the first secret ``key =`` (or ``:``) on each line."""
    pos = start
    while pos < end:
        stop = min(_line_end(text, pos), end)
        for match in _FREE_KEY.finditer(text, pos, stop):
            name = match.group(2)
            names = [name] + ([name[1:]] if match.group(1) and name[:1] in "nrtbf" else [])
            if any(is_secret_key(n) for n in names):
                value_start = match.end()
                while value_start < stop and text[value_start] in " \t":
                    value_start += 1
                if value_start < stop:
                    found.append((value_start, stop, ("comment", header, name.lower()), text[value_start:stop]))
                break
        nl = text.find("\n", stop)
        pos = end if nl < 0 else nl + 1


class _Scanner(object):
    """Walks a TOML text and records (start, end, identity, raw text) of each secret value."""

    def __init__(self, text):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.header = ()
        self.found = []

    def peek(self, offset=0):
        j = self.i + offset
        return self.s[j] if j < self.n else ""

    def skip_ws(self):
        while self.i < self.n and self.s[self.i] in " \t":
            self.i += 1

    def skip_blank(self):
        """Whitespace, new lines and comments (the comments' secrets recorded)."""
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                self.comment()
            else:
                return

    def comment(self):
        end = _line_end(self.s, self.i)
        _free(self.s, self.i, end, self.header, self.found)
        self.i = end

    def scan(self):
        while True:
            self.skip_blank()
            if self.i >= self.n:
                return self.found
            start, recorded = self.i, len(self.found)
            try:
                if self.peek() == "[":
                    self.table_header()
                else:
                    self.key_value(self.header)
                self.end_of_line()
            except _Unreadable:
                # Not TOML as far as this reads: mask the line as free text, go on with the next.
                del self.found[recorded:]
                end = _line_end(self.s, start)
                _free(self.s, start, end, self.header, self.found)
                self.i = end

    def end_of_line(self):
        self.skip_ws()
        if self.peek() == "#":
            self.comment()
        if self.peek() == "\r":
            self.i += 1
        if self.i < self.n and self.peek() != "\n":
            raise _Unreadable()

    def table_header(self):
        array = self.s.startswith("[[", self.i)
        self.i += 2 if array else 1
        self.skip_ws()
        keys = self.keys()
        self.skip_ws()
        close = "]]" if array else "]"
        if not self.s.startswith(close, self.i):
            raise _Unreadable()
        self.i += len(close)
        self.header = tuple(keys)

    def keys(self):
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
            start = self.i
            self.basic_string()
            return _decode_basic(self.s[start + 1:self.i - 1])
        if c == "'":
            start = self.i
            self.literal_string()
            return self.s[start + 1:self.i - 1]
        start = self.i
        while self.i < self.n and self.s[self.i] in _BARE:
            self.i += 1
        if self.i == start:
            raise _Unreadable()
        return self.s[start:self.i]

    def key_value(self, path):
        keys = self.keys()
        self.skip_ws()
        if self.peek() != "=":
            raise _Unreadable()
        self.i += 1
        self.skip_ws()
        self.value(path + tuple(keys), is_secret_key(keys[-1]))

    def value(self, path, secret):
        start = self.i
        c = self.peek()
        if secret and c != "{":
            try:
                self.skip_value()
            except _Unreadable:
                # A secret whose end cannot be found: everything from it on is masked.
                self.i = self.n
            self.found.append((start, self.i, ("value", path), self.s[start:self.i]))
        elif c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        else:
            self.skip_value()

    def skip_value(self):
        """Past one value of any kind, recording nothing."""
        c = self.peek()
        if self.s.startswith('"""', self.i) or self.s.startswith("'''", self.i):
            self.multiline_string()
        elif c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        elif c == "[":
            self.i += 1
            while True:
                self.skip_plain_blank()
                if self.peek() == "]":
                    self.i += 1
                    return
                if self.i >= self.n:
                    raise _Unreadable()
                self.skip_value()
                self.skip_plain_blank()
                if self.peek() == ",":
                    self.i += 1
                elif self.peek() != "]":
                    raise _Unreadable()
        elif c == "{":
            self.i += 1
            while True:
                self.skip_ws()
                if self.peek() == "}":
                    self.i += 1
                    return
                self.keys()
                self.skip_ws()
                if self.peek() != "=":
                    raise _Unreadable()
                self.i += 1
                self.skip_ws()
                self.skip_value()
                self.skip_ws()
                if self.peek() == ",":
                    self.i += 1
                elif self.peek() != "}":
                    raise _Unreadable()
        else:
            start = self.i
            while self.i < self.n and self.s[self.i] not in _VALUE_END:
                self.i += 1
            if self.i == start:
                raise _Unreadable()

    def skip_plain_blank(self):
        """Whitespace, new lines and comments inside a value that is masked whole."""
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                self.i = _line_end(self.s, self.i)
            else:
                return

    def array(self, path):
        self.i += 1
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.i += 1
                return
            if self.i >= self.n:
                raise _Unreadable()
            self.value(path, False)
            self.skip_blank()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                raise _Unreadable()

    def inline_table(self, path):
        self.i += 1
        while True:
            self.skip_ws()
            if self.peek() == "}":
                self.i += 1
                return
            self.key_value(path)
            self.skip_ws()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "}":
                raise _Unreadable()

    def basic_string(self):
        self.i += 1
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\":
                self.i += 2
            elif c == '"':
                self.i += 1
                return
            elif c == "\n":
                break
            else:
                self.i += 1
        raise _Unreadable()

    def literal_string(self):
        end = self.s.find("'", self.i + 1)
        nl = self.s.find("\n", self.i + 1)
        if end < 0 or 0 <= nl < end:
            raise _Unreadable()
        self.i = end + 1

    def multiline_string(self):
        delim = self.s[self.i:self.i + 3]
        self.i += 3
        while self.i < self.n:
            if delim == '"""' and self.s[self.i] == "\\":
                self.i += 2
                continue
            if self.s.startswith(delim, self.i):
                self.i += 3
                # Up to two more quotes belong to the string.
                for _count in range(2):
                    if self.peek() == delim[0]:
                        self.i += 1
                return
            self.i += 1
        raise _Unreadable()


_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _decode_basic(body):
    """The text of a quoted key (escapes read; an escape that cannot be read is kept as written)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            width = {"u": 4, "U": 8}.get(nxt)
            if nxt in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[nxt])
                i += 2
                continue
            if width and re.match(r"[0-9A-Fa-f]{%d}\Z" % width, body[i + 2:i + 2 + width]):
                code = int(body[i + 2:i + 2 + width], 16)
                if code <= 0x10FFFF:
                    out.append(chr(code))
                    i += 2 + width
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def _scan(text):
    """[(start, end, identity, raw)] of the secret values in ``text``, identities made unique by their place."""
    found = _Scanner(text).scan()
    seen = {}
    out = []
    for start, end, identity, raw in found:
        ordinal = seen.get(identity, 0)
        seen[identity] = ordinal + 1
        out.append((start, end, identity + (ordinal,), raw))
    return out
