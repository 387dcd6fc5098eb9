# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read OpenPGP public keys (certificates) without gpg: armor, packets, fingerprints.

Nodes are minimal (no gnupg; apt verifies with gpgv or sqv), so a repository key is
checked here in pure Python before it is installed: ASCII armor (RFC 4880 6.2, RFC 9580
6) with its CRC24 when present, the packet framing (old and new formats, every length
encoding), and the fingerprint of every primary key and subkey (v4: SHA-1, v5 and v6:
SHA-256). Signatures are not verified (that needs the key algorithms); apt and dnf verify
the repository's signatures with the installed key.
"""

from __future__ import absolute_import, division, print_function

import base64
import binascii
import hashlib
import re
import struct
import time

TAG_NAMES = {
    1: "Public-Key Encrypted Session Key", 2: "Signature", 3: "Symmetric-Key Encrypted Session Key",
    4: "One-Pass Signature", 5: "Secret-Key", 6: "Public-Key", 7: "Secret-Subkey", 8: "Compressed Data",
    9: "Symmetrically Encrypted Data", 10: "Marker", 11: "Literal Data", 12: "Trust", 13: "User ID",
    14: "Public-Subkey", 17: "User Attribute", 18: "Encrypted and Integrity Protected Data",
    19: "Modification Detection Code", 20: "AEAD Encrypted Data", 21: "Padding",
}
ALGORITHMS = {
    1: "RSA", 2: "RSA (encrypt only)", 3: "RSA (sign only)", 16: "Elgamal", 17: "DSA", 18: "ECDH", 19: "ECDSA",
    22: "EdDSA", 25: "X25519", 26: "X448", 27: "Ed25519", 28: "Ed448",
}
PUBLIC_KEY, PUBLIC_SUBKEY, USER_ID = 6, 14, 13
SECRET_TAGS = (5, 7)
# What a transferable public key (RFC 9580 10.1) may hold besides its keys.
KEY_COMPANIONS = (2, 10, 12, 13, 17, 21)
# New-format partial body lengths are allowed only for data packets (RFC 9580 4.2.1.4).
PARTIAL_OK = (8, 9, 11, 18, 20)

ARMOR_RE = re.compile(r"^-----BEGIN PGP ([A-Z0-9 ,/]+)-----[ \t\r]*$", re.M)
ARMOR_HEADER_RE = re.compile(r"^[!-9;-~]+: ")
# Some writers put the checksum at the end of the last base64 line instead of on a line of its own.
GLUED_CRC_RE = re.compile(r"^(.*[^=]=?=?)(=[A-Za-z0-9+/]{4})$")
PUBLIC_BLOCK = "PUBLIC KEY BLOCK"
CRC24_INIT, CRC24_POLY = 0xB704CE, 0x1864CFB


class OpenPGPError(ValueError):
    """The data is not a (usable) OpenPGP public key; the text says why."""


def hexstr(data):
    return binascii.hexlify(bytes(data)).decode("ascii").upper()


def crc24(data):
    """The CRC24 of RFC 4880 6.1, as an int."""
    crc = CRC24_INIT
    for octet in bytearray(data):
        crc ^= octet << 16
        for _bit in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= CRC24_POLY
    return crc & 0xFFFFFF


def _crc_text(crc):
    return "=" + base64.b64encode(struct.pack(">I", crc)[1:]).decode("ascii")


def _describe_start(data):
    """A short, printable view of the first bytes, for messages."""
    head = bytes(data[:40]).decode("latin-1")
    shown = "".join(c if 32 <= ord(c) < 127 else "." for c in head)
    return repr(shown)


def _looks_like_html(text):
    start = text.lstrip()[:512].lower()
    return start.startswith("<!doctype html") or start.startswith("<html") or "<html" in start or "<head" in start


def unarmor(data):
    """The packet bytes of every public key block in armored ``data`` (bytes)."""
    text = bytes(data).decode("latin-1")
    blocks = list(ARMOR_RE.finditer(text))
    if not blocks:
        raise OpenPGPError("no -----BEGIN PGP PUBLIC KEY BLOCK----- line")
    out = bytearray()
    for match in blocks:
        kind = match.group(1)
        if kind == "PRIVATE KEY BLOCK" or kind.startswith("SECRET KEY"):
            raise OpenPGPError("it is a private key block (BEGIN PGP %s); a private key is never installed, "
                               "and it should not have been published" % kind)
        if kind != PUBLIC_BLOCK:
            raise OpenPGPError("it is an armored PGP %s, not a PUBLIC KEY BLOCK" % kind)
        out += _armor_body(text, match)
    return bytes(out)


def _armor_body(text, match):
    end_line = "-----END PGP %s-----" % match.group(1)
    end = text.find(end_line, match.end())
    if end < 0:
        raise OpenPGPError("the armor has no %s line: the download is truncated" % end_line)
    lines = [line.strip() for line in text[match.end():end].splitlines()]
    lines = [line for line in lines if line]
    while lines and ARMOR_HEADER_RE.match(lines[0]):
        lines.pop(0)  # armor headers (Version:, Comment:, ...)
    checksum = None
    if lines and lines[-1].startswith("="):
        checksum = lines.pop()
    elif lines and GLUED_CRC_RE.match(lines[-1]):
        lines[-1], checksum = GLUED_CRC_RE.match(lines[-1]).groups()
    try:
        body = base64.b64decode("".join(lines).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise OpenPGPError("the armored body is not valid base64") from None
    if checksum is not None:
        try:
            wanted = base64.b64decode(checksum[1:].encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            wanted = b""
        if len(wanted) != 3:
            raise OpenPGPError("the armor checksum line %r is not a CRC24" % checksum)
        got = crc24(body)
        if struct.unpack(">I", b"\0" + wanted)[0] != got:
            raise OpenPGPError("the armor checksum (CRC24) does not match: %s in the file, %s computed; the data "
                               "is corrupt" % (checksum, _crc_text(got)))
    return body


def armor(data):
    """ASCII armor for public key packets, with the CRC24 line older readers (rpm) require."""
    body = base64.b64encode(bytes(data)).decode("ascii")
    lines = ["-----BEGIN PGP %s-----" % PUBLIC_BLOCK, ""]
    lines += [body[i:i + 64] for i in range(0, len(body), 64)]
    lines += [_crc_text(crc24(data)), "-----END PGP %s-----" % PUBLIC_BLOCK, ""]
    return "\n".join(lines).encode("ascii")


class Packet(object):
    """One packet: its tag, its body, its bytes as found (header included) and offset."""

    def __init__(self, tag, body, raw, offset):
        self.tag, self.body, self.raw, self.offset = tag, body, raw, offset

    @property
    def name(self):
        return TAG_NAMES.get(self.tag, "tag %d" % self.tag)


def _need(data, pos, count, what):
    if pos + count > len(data):
        raise OpenPGPError("%s is truncated: it needs %d more bytes, %d remain" % (what, count, len(data) - pos))


def _new_length(data, pos, what):
    """(length, header octets, partial?) of a new-format length at ``pos``."""
    _need(data, pos, 1, what)
    first = data[pos]
    if first < 192:
        return first, 1, False
    if first < 224:
        _need(data, pos, 2, what)
        return ((first - 192) << 8) + data[pos + 1] + 192, 2, False
    if first == 255:
        _need(data, pos, 5, what)
        return struct.unpack(">I", bytes(data[pos + 1:pos + 5]))[0], 5, False
    return 1 << (first & 0x1F), 1, True


def packets(data):
    """Every packet in binary ``data``, in order; OpenPGPError on bad framing."""
    data = bytearray(data)
    found, pos = [], 0
    while pos < len(data):
        start, octet = pos, data[pos]
        what = "packet %d (at byte %d)" % (len(found) + 1, start)
        if not octet & 0x80:
            raise OpenPGPError("%s does not start with a packet header (byte 0x%02x)" % (what, octet))
        if octet & 0x40:  # new format
            tag, pos = octet & 0x3F, pos + 1
            length, size, partial = _new_length(data, pos, what)
            pos += size
            body = bytearray()
            while partial:
                if tag not in PARTIAL_OK:
                    raise OpenPGPError("%s (%s) uses a partial body length, which only data packets may"
                                       % (what, TAG_NAMES.get(tag, "tag %d" % tag)))
                _need(data, pos, length, what)
                body += data[pos:pos + length]
                pos += length
                length, size, partial = _new_length(data, pos, what)
                pos += size
        else:  # old format
            tag, kind, pos = (octet >> 2) & 0x0F, octet & 0x03, pos + 1
            if kind == 3:
                length = len(data) - pos  # indeterminate: to the end
            else:
                size = (1, 2, 4)[kind]
                _need(data, pos, size, what)
                length = int(binascii.hexlify(bytes(data[pos:pos + size])), 16)
                pos += size
            body = bytearray()
        what = "%s (%s)" % (what, TAG_NAMES.get(tag, "tag %d" % tag))
        if tag == 0:
            raise OpenPGPError("%s has the reserved tag 0" % what)
        _need(data, pos, length, what)
        body += data[pos:pos + length]
        pos += length
        found.append(Packet(tag, bytes(body), bytes(data[start:pos]), start))
    return found


def fingerprint(body):
    """(version, fingerprint in upper-case hex) of a Public-Key or Public-Subkey packet body."""
    if not body:
        raise OpenPGPError("a key packet is empty")
    version = bytearray(body)[0]
    if version == 4:
        if len(body) > 0xFFFF:
            raise OpenPGPError("a version 4 key packet longer than 65535 bytes")
        return version, hexstr(hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body).digest())
    if version in (5, 6):  # LibrePGP (v5) and RFC 9580 (v6)
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return version, hexstr(hashlib.sha256(prefix + struct.pack(">I", len(body)) + body).digest())
    if version in (2, 3):
        raise OpenPGPError("it holds a version %d key, obsolete since RFC 4880 (MD5 fingerprints); "
                           "ask for a current key" % version)
    raise OpenPGPError("it holds a key of unknown version %d" % version)


def _key_info(packet):
    body = bytearray(packet.body)
    version, fpr = fingerprint(packet.body)
    if len(body) < 6:
        raise OpenPGPError("a %s packet is too short (%d bytes)" % (packet.name, len(body)))
    created = struct.unpack(">I", bytes(body[1:5]))[0]
    return {
        "fingerprint": fpr,
        "version": version,
        "algorithm": ALGORITHMS.get(body[5], "algorithm %d" % body[5]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
    }


class Keyring(object):
    """The keys found: ``keys`` (dicts, one per primary key) and the packets of each."""

    def __init__(self, keys, groups):
        self.keys = keys
        self._groups = groups

    @property
    def fingerprints(self):
        return [key["fingerprint"] for key in self.keys]

    def subset(self, fingerprints):
        """A Keyring of only the primary keys named (with their user IDs, subkeys, signatures)."""
        pairs = [(key, group) for key, group in zip(self.keys, self._groups) if key["fingerprint"] in fingerprints]
        return Keyring([key for key, _group in pairs], [group for _key, group in pairs])

    def binary(self):
        """The packet bytes as found, framing included (what gpg --dearmor gives)."""
        return b"".join(packet.raw for group in self._groups for packet in group)


def read_keys(packet_list):
    """Group packets into keys; refuse what is not a set of transferable public keys."""
    if not packet_list:
        raise OpenPGPError("it holds no OpenPGP packet")
    for packet in packet_list:
        if packet.tag in SECRET_TAGS:
            raise OpenPGPError("it holds a private key (%s packet); a private key is never installed, and it "
                               "should not have been published" % packet.name)
    if not any(packet.tag == PUBLIC_KEY for packet in packet_list):
        names = sorted(set(packet.name for packet in packet_list))
        raise OpenPGPError("it holds no public key, only: %s" % ", ".join(names))
    keys, groups = [], []
    for packet in packet_list:
        if packet.tag == PUBLIC_KEY:
            key = _key_info(packet)
            key.update(uids=[], subkeys=[])
            keys.append(key)
            groups.append([packet])
        elif packet.tag in (10, 21) and not keys:
            continue  # a marker or padding before the first key is ignored, as readers must
        elif not keys:
            raise OpenPGPError("it starts with a %s packet, not a public key" % packet.name)
        elif packet.tag == PUBLIC_SUBKEY:
            keys[-1]["subkeys"].append(_key_info(packet)["fingerprint"])
            groups[-1].append(packet)
        elif packet.tag in KEY_COMPANIONS:
            if packet.tag == USER_ID:
                keys[-1]["uids"].append(packet.body.decode("utf-8", "replace"))
            groups[-1].append(packet)
        else:
            raise OpenPGPError("it holds a %s packet, which has no place in a public key" % packet.name)
    return Keyring(keys, groups)


def parse(data):
    """(Keyring, armored?) of ``data`` (bytes): armored or binary public keys."""
    data = bytes(data)
    if not data.strip():
        raise OpenPGPError("it is empty")
    if bytearray(data[:1])[0] & 0x80:
        return read_keys(packets(data)), False
    text = data.decode("latin-1")
    if not ARMOR_RE.search(text):
        if _looks_like_html(text):
            raise OpenPGPError("it is an HTML page (starts with %s), not a key: an error page or a wrong URL?"
                               % _describe_start(data.lstrip()))
        raise OpenPGPError("it is neither ASCII armor (no -----BEGIN PGP PUBLIC KEY BLOCK----- line) nor binary "
                           "OpenPGP (starts with %s)" % _describe_start(data))
    return read_keys(packets(unarmor(data))), True


def normalize_fingerprint(text):
    """A fingerprint as upper-case hex without spaces; OpenPGPError unless it is a full v4/v5/v6 one."""
    value = re.sub(r"\s+", "", str(text)).upper()
    if value.startswith("0X"):
        value = value[2:]
    if not re.match(r"^[0-9A-F]+$", value):
        raise OpenPGPError("%r is not a hexadecimal fingerprint" % text)
    if len(value) not in (40, 64):
        raise OpenPGPError("%r has %d hex digits: a fingerprint has 40 (v4) or 64 (v5, v6); key IDs are not "
                           "accepted, since they can be forged" % (text, len(value)))
    return value


def summary(keyring):
    """Lines that describe the keys, for a diff."""
    lines = []
    for key in keyring.keys:
        lines.append("pub %(fingerprint)s (v%(version)d %(algorithm)s, created %(created)s)" % key)
        lines.extend("uid %s" % uid for uid in key["uids"])
        lines.extend("sub %s" % sub for sub in key["subkeys"])
    return lines
