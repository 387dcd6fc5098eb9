"""openpgp: armor, packet framing and fingerprints, against keys gpg made and published test vectors.

The fingerprints below are gpg 2.2.40's (`gpg --with-colons --show-keys`, fixtures/openpgp/README.md)
and, for the v5 and v6 keys, those published with them. When gpg is installed, it is asked again.
"""

import base64
import os
import shutil
import struct
import subprocess

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import openpgp

from ...conftest import FIXTURES

KEYS = os.path.join(FIXTURES, "openpgp")
RSA = ("D2CC921BEB056A3658159494A5FC28F93925C858", ["E314635C3F0F5E034469040E1E31B83DBF8B5D04"],
       ["gpunode test RSA <rsa@gpunode.invalid>"])
ED25519 = ("2C0B6ED9939D2A1DC7B663556CAE62B28689534A", ["CB01D7148C45ACF96C687E59D2EED22EDFFFFC37"],
           ["gpunode test Ed25519 <ed25519@gpunode.invalid>"])
V5 = ("19347BC9872464025F99DF3EC2E0000ED9884892E1F7B3EA4C94009159569B54",
      ["E4557C2B02FFBF4B04F87401EC336AF7133D0F85BE7FD09BAEFD9CAEB8C93965"], ["emma.goldman@example.net"])
V6 = ("CB186C4F0609A697E4D52DFA6C722B0C1F1E27C18A56708F6525EC27BAD9ACC9",
      ["12C83F1E706F6308FE151A417743A1F033790E93E9978488D1DB378DA9930885"], [])
CASES = {
    "rsa.asc": RSA, "rsa.gpg": RSA, "ed25519.asc": ED25519, "ed25519.gpg": ED25519,
    "v5-emma.asc": V5, "v6-rfc9580.asc": V6,
}
GPG = shutil.which("gpg")


def fixture(name):
    with open(os.path.join(KEYS, name), "rb") as handle:
        return handle.read()


def refused(data, *words):
    with pytest.raises(openpgp.OpenPGPError) as exc:
        openpgp.parse(data)
    for word in words:
        assert word in str(exc.value), str(exc.value)
    return str(exc.value)


@pytest.fixture(autouse=True)
def _no_agent_left(tmp_path):
    """gpg starts an agent for key generation; stop it with the test, or it outlives the run."""
    yield
    home = tmp_path / "gnupg"
    if GPG and home.is_dir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)


def gpg(tmp_path, *args, **kwargs):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run([GPG, "--homedir", str(home), "--batch"] + list(args), check=True,
                          capture_output=True, **kwargs).stdout


def gpg_fingerprints(tmp_path, path):
    out = gpg(tmp_path, "--with-colons", "--show-keys", str(path)).decode()
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


def new_format(tag, body, octets):
    """A new-format packet with a 1-, 2- or 5-octet length."""
    size = len(body)
    if octets == 1:
        assert size < 192
        length = struct.pack(">B", size)
    elif octets == 2:
        assert 192 <= size < 8384
        length = struct.pack(">BB", ((size - 192) >> 8) + 192, (size - 192) & 0xFF)
    else:
        length = b"\xff" + struct.pack(">I", size)
    return struct.pack(">B", 0xC0 | tag) + length + body


def old_format(tag, body, kind):
    length = {0: struct.pack(">B", len(body)), 1: struct.pack(">H", len(body)), 2: struct.pack(">I", len(body)),
              3: b""}[kind]
    return struct.pack(">B", 0x80 | (tag << 2) | kind) + length + body


@pytest.mark.parametrize("name", sorted(CASES))
def test_fingerprints_subkeys_and_uids(name):
    keyring, armored = openpgp.parse(fixture(name))
    primary, subkeys, uids = CASES[name]
    assert armored == name.endswith(".asc")
    assert keyring.fingerprints == [primary]
    assert keyring.keys[0]["subkeys"] == subkeys and keyring.keys[0]["uids"] == uids
    assert keyring.keys[0]["version"] == {"v5-emma.asc": 5, "v6-rfc9580.asc": 6}.get(name, 4)


def test_key_details():
    key = openpgp.parse(fixture("rsa.asc"))[0].keys[0]
    assert (key["algorithm"], key["created"]) == ("RSA", "2026-12-01T14:16:12Z")
    assert openpgp.parse(fixture("v6-rfc9580.asc"))[0].keys[0]["algorithm"] == "Ed25519"
    assert openpgp.parse(fixture("ed25519.gpg"))[0].keys[0]["algorithm"] == "EdDSA"


@pytest.mark.skipif(GPG is None, reason="gpg is not installed")
@pytest.mark.parametrize("name", ["rsa.asc", "rsa.gpg", "ed25519.asc", "ed25519.gpg"])
def test_gpg_agrees(tmp_path, name):
    keyring = openpgp.parse(fixture(name))[0]
    ours = [fpr for key in keyring.keys for fpr in [key["fingerprint"]] + key["subkeys"]]
    assert gpg_fingerprints(tmp_path, os.path.join(KEYS, name)) == ours


@pytest.mark.parametrize("name", ["rsa", "ed25519"])
def test_dearmor_gives_gpgs_binary_export(name):
    keyring = openpgp.parse(fixture(name + ".asc"))[0]
    assert keyring.binary() == fixture(name + ".gpg") == openpgp.unarmor(fixture(name + ".asc"))


def test_armor_round_trip_has_a_crc_line(tmp_path):
    binary = fixture("ed25519.gpg")
    text = openpgp.armor(binary)
    assert text.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n") and b"\n=" in text
    assert openpgp.parse(text)[0].binary() == binary
    assert text == fixture("ed25519.asc")  # gpg's armor, byte for byte (it has no headers)
    if GPG:
        (tmp_path / "ours.asc").write_bytes(openpgp.armor(fixture("rsa.gpg")))
        assert gpg_fingerprints(tmp_path, tmp_path / "ours.asc") == [RSA[0]] + RSA[1]


def test_crc24_of_a_known_value():
    assert openpgp.crc24(b"") == 0xB704CE
    assert openpgp._crc_text(openpgp.crc24(openpgp.unarmor(fixture("rsa.asc")))) == "=v4Ck"


def test_crc_mismatch_is_refused():
    text = fixture("rsa.asc")
    assert b"\n=v4Ck\n" in text
    refused(text.replace(b"\n=v4Ck\n", b"\n=v4Cl\n"), "checksum (CRC24) does not match", "=v4Cl", "=v4Ck")
    lines = text.split(b"\n")
    lines[3] = lines[3][:10] + (b"A" if lines[3][10:11] != b"A" else b"B") + lines[3][11:]  # one flipped character
    refused(b"\n".join(lines), "does not match")
    refused(text.replace(b"\n=v4Ck\n", b"\n=v4\n"), "is not a CRC24")


def test_armor_without_crc_with_headers_crlf_and_glued_crc():
    text = fixture("rsa.asc")
    assert openpgp.parse(text.replace(b"\n=v4Ck\n", b"\n"))[0].fingerprints == [RSA[0]]
    with_headers = text.replace(b"BLOCK-----\n\n", b"BLOCK-----\nComment: a mirror's copy\nVersion: x\n\n", 1)
    assert openpgp.parse(b"Some text before the block\n" + with_headers)[0].fingerprints == [RSA[0]]
    assert openpgp.parse(text.replace(b"\n", b"\r\n"))[0].fingerprints == [RSA[0]]
    assert openpgp.parse(text.replace(b"\n=v4Ck", b"=v4Ck"))[0].fingerprints == [RSA[0]]


def test_two_armored_blocks_and_subset():
    keyring = openpgp.parse(fixture("rsa.asc") + fixture("ed25519.asc"))[0]
    assert keyring.fingerprints == [RSA[0], ED25519[0]]
    assert keyring.subset([ED25519[0]]).binary() == fixture("ed25519.gpg")
    assert openpgp.parse(fixture("rsa.gpg") + fixture("ed25519.gpg"))[0].fingerprints == [RSA[0], ED25519[0]]


def test_html_page_is_refused():
    message = refused(b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n", "HTML page")
    assert "'<!DOCTYPE html>" in message
    refused(b"\n  <html>\n<body>Access denied</body></html>", "HTML page")


def test_other_text_is_refused():
    refused(b"not a key at all\n", "neither ASCII armor", "'not a key at all.'")


def test_empty_is_refused():
    refused(b"", "it is empty")
    refused(b" \n\n", "it is empty")


def test_private_key_block_is_refused():
    text = fixture("rsa.asc").replace(b"PUBLIC KEY BLOCK", b"PRIVATE KEY BLOCK")
    refused(text, "private key block")


def test_secret_key_packet_is_refused():
    binary = fixture("rsa.gpg")
    assert binary[:1] == b"\x99"  # old format, tag 6, two-octet length
    refused(b"\x95" + binary[1:], "private key (Secret-Key packet)")
    refused(openpgp.armor(b"\x95" + binary[1:]), "private key")


@pytest.mark.skipif(GPG is None, reason="gpg is not installed")
def test_gpgs_secret_key_export_is_refused(tmp_path):
    gpg(tmp_path, "--passphrase", "", "--quick-gen-key", "throwaway <t@gpunode.invalid>", "ed25519", "sign", "never")
    refused(gpg(tmp_path, "--armor", "--export-secret-keys"), "private key block")
    refused(gpg(tmp_path, "--export-secret-keys"), "private key (Secret-Key packet)")


def test_signature_alone_is_refused():
    binary = fixture("rsa.gpg")
    signatures = [p.raw for p in openpgp.packets(binary) if p.tag == 2]
    refused(signatures[0], "no public key, only: Signature")
    refused(signatures[0] + binary, "starts with a Signature packet")
    refused(fixture("rsa.asc").replace(b"PUBLIC KEY BLOCK", b"SIGNATURE"), "armored PGP SIGNATURE")


def test_truncated_data_is_refused():
    binary = fixture("rsa.gpg")
    refused(binary[:-10], "is truncated", "Signature")
    refused(binary[:2], "packet 1 (at byte 0) is truncated")
    text = fixture("rsa.asc")
    refused(text[: text.index(b"-----END")], "no -----END PGP PUBLIC KEY BLOCK----- line", "truncated")


def test_bad_base64_is_refused():
    refused(fixture("rsa.asc").replace(b"\n=v4Ck", b"\n*!*\n=v4Ck"), "not valid base64")


def test_new_and_old_packet_formats_and_every_length_encoding():
    found = openpgp.packets(fixture("rsa.gpg"))
    for octets in (1, 2, 5):
        data = b"".join(new_format(p.tag, p.body, 5 if len(p.body) >= 8384 or (octets == 1 and len(p.body) >= 192)
                                   or (octets == 2 and len(p.body) < 192) else octets) for p in found)
        assert [p.body for p in openpgp.packets(data)] == [p.body for p in found]
        assert openpgp.parse(data)[0].fingerprints == [RSA[0]]
    short = openpgp.packets(fixture("ed25519.gpg"))
    assert all(len(p.body) < 192 for p in short)
    one_octet = b"".join(new_format(p.tag, p.body, 1) for p in short)
    assert openpgp.parse(one_octet)[0].fingerprints == [ED25519[0]]
    for kind in (0, 1, 2):
        data = b"".join(old_format(p.tag, p.body, kind) for p in short)
        assert openpgp.parse(data)[0].keys[0]["subkeys"] == ED25519[1]
    last = b"".join(old_format(p.tag, p.body, 1) for p in short[:-1]) + old_format(short[-1].tag, short[-1].body, 3)
    assert openpgp.parse(last)[0].fingerprints == [ED25519[0]]


def test_partial_body_lengths_only_for_data_packets():
    body = b"x" * 700
    # 512-octet partial chunk, then the final 188 octets with a one-octet length.
    literal = b"\xcb" + b"\xe9" + body[:512] + struct.pack(">B", 188) + body[512:]
    assert openpgp.packets(literal)[0].body == body
    refused(literal, "no public key, only: Literal Data")
    key = openpgp.packets(fixture("ed25519.gpg"))[0]
    with pytest.raises(openpgp.OpenPGPError, match="partial body length, which only data packets may"):
        openpgp.packets(b"\xc6\xe0" + key.body[:1] + struct.pack(">B", len(key.body) - 1) + key.body[1:])


def test_reserved_tag_and_foreign_packets_are_refused():
    refused(b"\x80\x01x", "reserved tag 0")
    binary = fixture("ed25519.gpg")
    refused(binary + new_format(11, b"b\x00\x00\x00\x00\x00data", 1), "Literal Data packet, which has no place")


def test_marker_before_the_key_is_ignored():
    marker = new_format(10, b"PGP", 1)
    assert openpgp.parse(marker + fixture("ed25519.gpg"))[0].fingerprints == [ED25519[0]]


def test_version_3_key_is_refused():
    body = b"\x03" + b"\x00" * 7 + b"\x01" + b"\x00\x08\xff" + b"\x00\x01\x01"
    refused(old_format(6, body, 0), "version 3 key, obsolete")
    refused(old_format(6, b"\x07" + b"\x00" * 10, 0), "unknown version 7")


@pytest.mark.parametrize("text, value", [
    ("C95B 321B 61E8 8C18 09C4  F759 DDCA E044 F796 ECB0", "C95B321B61E88C1809C4F759DDCAE044F796ECB0"),
    ("0xc95b321b61e88c1809c4f759ddcae044f796ecb0", "C95B321B61E88C1809C4F759DDCAE044F796ECB0"),
    (V6[0].lower(), V6[0]),
])
def test_normalize_fingerprint(text, value):
    assert openpgp.normalize_fingerprint(text) == value


@pytest.mark.parametrize("text, words", [
    ("DDCAE044F796ECB0", "16 hex digits"),
    ("F796ECB0", "key IDs are not accepted"),
    ("C95B321B61E88C1809C4F759DDCAE044F796ECBZ", "not a hexadecimal fingerprint"),
])
def test_normalize_fingerprint_refuses(text, words):
    with pytest.raises(openpgp.OpenPGPError, match=words):
        openpgp.normalize_fingerprint(text)


def test_summary_lines():
    assert openpgp.summary(openpgp.parse(fixture("rsa.gpg"))[0]) == [
        "pub %s (v4 RSA, created 2026-12-01T14:16:12Z)" % RSA[0], "uid " + RSA[2][0], "sub " + RSA[1][0]]


def test_base64_of_fixtures_is_what_gpg_wrote():
    # The armored fixture and the binary one hold the same bytes (guards the fixtures themselves).
    text = fixture("rsa.asc").decode()
    body = "".join(line for line in text.splitlines()[2:-2])
    assert base64.b64decode(body) == fixture("rsa.gpg")
