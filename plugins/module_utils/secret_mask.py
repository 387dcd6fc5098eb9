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

from ansible_collections.gpunode.nvidia.plugins.module_utils.toml_lex import ESCAPES, HEX_DIGITS, Lexer

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


class _Scanner(Lexer):
    """Walks a TOML text and records (start, end, identity, raw text) of each secret value.

    Keys and strings are read by Lexer, leniently: any character goes in a
    string, an escape that cannot be read stays as written, and what Lexer
    cannot read at all raises _Unreadable (see error()).
    """

    def __init__(self, text):
        super(_Scanner, self).__init__(text)
        self.header = ()
        self.found = []

    def error(self, message, pos=None):
        return _Unreadable(message)

    def check_char(self, c):
        """Any character goes in a string here."""

    def escape(self, multiline):
        """At a backslash: the text of the escape, or the backslash and the next character as written."""
        c = self.peek(1)
        if c in ESCAPES:
            self.i += 2
            return ESCAPES[c]
        width = {"u": 4, "U": 8}.get(c, 0)
        digits = self.s[self.i + 2:self.i + 2 + width]
        if width and len(digits) == width and all(d in HEX_DIGITS for d in digits) and int(digits, 16) <= 0x10FFFF:
            self.i += 2 + width
            return chr(int(digits, 16))
        self.i += 2
        return self.s[self.i - 2:self.i]

    def skip_blank(self, record=True):
        """Whitespace, new lines and comments (the comments' secrets recorded, unless not ``record``)."""
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c != "#":
                return
            elif record:
                self.comment()
            else:
                self.i = _line_end(self.s, self.i)

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
                    self.header = tuple(self.header_keys(self.s.startswith("[[", self.i)))
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

    def key_value(self, path):
        """One ``key = value``; ``path`` (that of the enclosing table) is None inside a secret value, where nothing is recorded."""
        keys = self.key_equals()
        if path is not None and is_secret_key(keys[-1]) and self.peek() != "{":
            self.secret_value(path + tuple(keys))
        else:
            self.value(None if path is None else path + tuple(keys))

    def secret_value(self, path):
        start = self.i
        try:
            self.value(None)
        except _Unreadable:
            # A secret whose end cannot be found: everything from it on is masked.
            self.i = self.n
        self.found.append((start, self.i, ("value", path), self.s[start:self.i]))

    def value(self, path):
        """Past one value; ``path`` as for key_value."""
        c = self.peek()
        if c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        elif c in ('"', "'"):
            self.string()
        elif not self.bare_token():
            raise _Unreadable()

    def array(self, path):
        self.i += 1
        while True:
            self.skip_blank(path is not None)
            if self.peek() == "]":
                self.i += 1
                return
            if self.i >= self.n:
                raise _Unreadable()
            self.value(path)
            self.skip_blank(path is not None)
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
