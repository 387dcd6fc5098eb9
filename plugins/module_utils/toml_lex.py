# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TOML's lexing primitives: keys, strings, bare values, table headers.

One place for them, shared by the strict reader of toml_rw.py and the lenient
scanner of secret_mask.py (which finds secret values in any text, TOML or
not). They live in a module of their own because toml_rw imports secret_mask
(its error messages do not show secrets): a base class in either would make an
import cycle.

Strictness is left to three methods that a subclass supplies:
``error(message, pos=None)`` returns the exception to raise;
``check_char(c)`` checks one character inside a string;
``escape(multiline)``, at a backslash inside a basic string, reads the escape
and returns the text it stands for.
"""

from __future__ import absolute_import, division, print_function

BARE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Characters that end a bare value (number, boolean) on its line.
VALUE_END = frozenset(" \t\r\n,]}#")


class Lexer(object):
    """A position (``i``) in a text (``s``, of length ``n``) and the steps that move it past TOML's tokens."""

    def __init__(self, text):
        self.s = text
        self.n = len(text)
        self.i = 0

    def error(self, message, pos=None):
        raise NotImplementedError()

    def check_char(self, c):
        raise NotImplementedError()

    def escape(self, multiline):
        raise NotImplementedError()

    def peek(self, offset=0):
        j = self.i + offset
        return self.s[j] if j < self.n else ""

    def skip_ws(self):
        while self.i < self.n and self.s[self.i] in " \t":
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

    # ---- keys ----
    def key(self):
        """A key, dotted or not: the list of its parts."""
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
        while self.i < self.n and self.s[self.i] in BARE_CHARS:
            self.i += 1
        if self.i == start:
            raise self.error("expected a key")
        return self.s[start:self.i]

    def key_equals(self):
        """``key =`` and the whitespace after it: the key's parts."""
        keys = self.key()
        self.skip_ws()
        if self.peek() != "=":
            raise self.error("expected '=' after the key")
        self.i += 1
        self.skip_ws()
        return keys

    def header_keys(self, array):
        """At a ``[`` (``[[`` when ``array``): past the table header, returning its key's parts."""
        close = "]]" if array else "]"
        self.i += len(close)
        self.skip_ws()
        keys = self.key()
        self.skip_ws()
        if not self.s.startswith(close, self.i):
            raise self.error("expected '%s' to close the %s header" % (close, "array of tables" if array else "table"))
        self.i += len(close)
        return keys

    # ---- values ----
    def bare_token(self):
        """Past a bare value (number, boolean, date), returning it as written ("" when there is none)."""
        start = self.i
        while self.i < self.n and self.s[self.i] not in VALUE_END:
            self.i += 1
        return self.s[start:self.i]

    def string(self):
        """At a quote: past a string of any of TOML's four kinds, returning its text."""
        delim = self.peek() * 3
        if self.s.startswith(delim, self.i):
            return self.multiline_string(delim)
        return self.basic_string() if delim[0] == '"' else self.literal_string()

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
