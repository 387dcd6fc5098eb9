"""repo_key through its main(), on files in a temporary directory and a local HTTP server."""

import functools
import base64
import hashlib
import os
import stat
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.gpunode.nvidia.plugins.module_utils import openpgp
from ansible_collections.gpunode.nvidia.plugins.modules import repo_key

from ..module_utils.test_openpgp import ED25519, KEYS, RSA, fixture
from ...utils import run_module

HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 (a free port) serving fixtures/openpgp plus a login page; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    for name in os.listdir(KEYS):
        (root / name).write_bytes(fixture(name))
    (root / "login.html").write_bytes(HTML)
    httpd = HTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dest(tmp_path):
    return str(tmp_path / "keyrings" / "gpunode-test.gpg")


def warnings(result):
    """Warning texts (ansible-core 2.19 wraps each in an event record)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def run(capsys, **args):
    # Warnings are kept process-wide (a module runs alone in its process on a node): start each run afresh.
    ansible_warnings._global_warnings.clear()
    return run_module(repo_key.main, args, capsys)


def test_src_armored_is_written_dearmored_and_second_run_is_unchanged(dest, capsys):
    src = os.path.join(KEYS, "rsa.asc")
    failed, result = run(capsys, src=src, dest=dest, fingerprints=[RSA[0].lower()])
    assert not failed and result["changed"], result
    assert read(dest) == fixture("rsa.gpg") and mode_of(dest) == 0o644
    assert (result["fingerprints"], result["subkeys"], result["uids"]) == ([RSA[0]], RSA[1], RSA[2])
    assert result["format"] == "binary" and result["mode"] == "0644"
    assert result["sha256"] == hashlib.sha256(fixture("rsa.gpg")).hexdigest()
    assert result["source_sha256"] == hashlib.sha256(fixture("rsa.asc")).hexdigest()
    assert result["keys"][0]["algorithm"] == "RSA" and not warnings(result)
    # What a caller checks a repository with before writing: the very bytes written.
    assert base64.b64decode(result["content_base64"]) == fixture("rsa.gpg")
    assert os.listdir(os.path.dirname(dest)) == ["gpunode-test.gpg"]  # no temporary file left

    failed, again = run(capsys, src=src, dest=dest, fingerprints=[RSA[0]])
    assert not failed and not again["changed"]
    failed, binary = run(capsys, src=os.path.join(KEYS, "rsa.gpg"), dest=dest, fingerprints=[RSA[0]])
    assert not failed and not binary["changed"]  # the same key, read from binary


def test_file_url_and_armored_format(dest, capsys):
    url = "file://" + os.path.join(KEYS, "ed25519.gpg")
    failed, result = run(capsys, url=url, dest=dest, fingerprints=[ED25519[0]], format="armored", mode="0640")
    assert not failed and result["changed"], result
    assert read(dest) == fixture("ed25519.asc") and mode_of(dest) == 0o640
    assert openpgp.parse(read(dest))[0].fingerprints == [ED25519[0]]
    failed, again = run(capsys, url=url, dest=dest, fingerprints=[ED25519[0]], format="armored", mode=0o640)
    assert not failed and not again["changed"]


def test_http_url(server, dest, capsys):
    failed, result = run(capsys, url=server + "/rsa.asc", dest=dest, fingerprints=[RSA[0]])
    assert not failed and result["changed"] and read(dest) == fixture("rsa.gpg")
    failed, again = run(capsys, url=server + "/rsa.asc", dest=dest, fingerprints=[RSA[0]])
    assert not failed and not again["changed"]


def test_http_error_and_unreachable_server_fail(server, dest, capsys):
    failed, result = run(capsys, url=server + "/missing", dest=dest, fingerprints=[RSA[0]])
    assert failed and result["msg"].startswith("cannot fetch the key from %s/missing: " % server), result
    assert "404" in result["msg"] and not os.path.exists(dest)
    port = int(server.rsplit(":", 1)[1])
    failed, result = run(capsys, url="http://127.0.0.1:%d/rsa.asc" % (port + 1 if port < 65535 else 1), dest=dest,
                         fingerprints=[RSA[0]], timeout=5)
    assert failed and "cannot fetch the key from" in result["msg"]


def test_html_page_is_refused_in_check_mode_too(server, dest, capsys):
    url = server + "/login.html"
    failed, result = run(capsys, url=url, dest=dest, fingerprints=[RSA[0]], _ansible_check_mode=True)
    assert failed and result["msg"].startswith("%s is not an OpenPGP public key: it is an HTML page" % url), result
    assert not os.path.exists(os.path.dirname(dest))


def test_plain_http_without_pinning_is_refused(server, dest, capsys):
    failed, result = run(capsys, url=server + "/rsa.asc", dest=dest)
    assert failed and result["msg"].startswith("refusing an unverified download: %s/rsa.asc is fetched over plain HTTP"
                                               % server)
    failed, result = run(capsys, url=server + "/rsa.asc", dest=dest,
                         checksum="sha256:" + hashlib.sha256(fixture("rsa.asc")).hexdigest())
    assert not failed and "no fingerprints given" in warnings(result)[0]


def test_check_mode_fetches_and_checks_but_writes_nothing(server, dest, capsys):
    failed, result = run(capsys, url=server + "/rsa.asc", dest=dest, fingerprints=[RSA[0]],
                         _ansible_check_mode=True, _ansible_diff=True)
    assert not failed and result["changed"] and result["fingerprints"] == [RSA[0]]
    assert not os.path.exists(os.path.dirname(dest))
    assert result["diff"]["before_header"] == dest + " (absent)" and result["diff"]["before"] == ""
    assert ("pub %s (v4 RSA, created 2026-12-01T14:16:12Z)\n" % RSA[0]) in result["diff"]["after"]
    assert "format: binary\nmode: 0644\n" in result["diff"]["after"]
    failed, result = run(capsys, url=server + "/rsa.asc", dest=dest, fingerprints=[ED25519[0]],
                         _ansible_check_mode=True)
    assert failed and "holds no key with an accepted fingerprint" in result["msg"]


def test_diff_summarises_the_key_replaced(dest, capsys):
    run(capsys, src=os.path.join(KEYS, "rsa.gpg"), dest=dest, fingerprints=[RSA[0]])
    failed, result = run(capsys, src=os.path.join(KEYS, "ed25519.asc"), dest=dest, fingerprints=[ED25519[0]],
                         _ansible_diff=True)
    assert not failed and result["changed"]
    assert result["diff"]["before"].startswith("pub %s" % RSA[0])
    assert result["diff"]["after"].startswith("pub %s" % ED25519[0])
    assert read(dest) == fixture("ed25519.gpg")


def test_mode_change_alone_is_a_change_without_rewriting(dest, capsys):
    src = os.path.join(KEYS, "rsa.asc")
    run(capsys, src=src, dest=dest, fingerprints=[RSA[0]])
    inode = os.stat(dest).st_ino
    os.chmod(dest, 0o600)
    failed, result = run(capsys, src=src, dest=dest, fingerprints=[RSA[0]], _ansible_check_mode=True)
    assert not failed and result["changed"] and mode_of(dest) == 0o600
    failed, result = run(capsys, src=src, dest=dest, fingerprints=[RSA[0]])
    assert not failed and result["changed"] and mode_of(dest) == 0o644 and os.stat(dest).st_ino == inode


def test_fingerprint_mismatch_names_wanted_and_found(dest, capsys):
    wanted = "C95B 321B 61E8 8C18 09C4  F759 DDCA E044 F796 ECB0"
    failed, result = run(capsys, src=os.path.join(KEYS, "rsa.asc"), dest=dest, fingerprints=[wanted])
    assert failed and not os.path.exists(dest)
    assert result["msg"] == ("%s holds no key with an accepted fingerprint: wanted C95B321B61E88C1809C4F759DDCAE044F796ECB0, "
                             "found %s (%s)" % (os.path.join(KEYS, "rsa.asc"), RSA[0], RSA[2][0]))
    failed, result = run(capsys, src=os.path.join(KEYS, "rsa.asc"), dest=dest, fingerprints=[RSA[1][0]])
    assert failed and "%s is a subkey of %s, and fingerprints lists primary keys" % (RSA[1][0], RSA[0]) in result["msg"]


def test_only_the_pinned_key_of_several_is_written(tmp_path, dest, capsys):
    both = tmp_path / "both.asc"
    both.write_bytes(fixture("rsa.asc") + fixture("ed25519.asc"))
    failed, result = run(capsys, src=str(both), dest=dest, fingerprints=[ED25519[0]])
    assert not failed and result["fingerprints"] == [ED25519[0]] and read(dest) == fixture("ed25519.gpg")
    assert warnings(result) == ["%s also holds keys not in fingerprints, left out of %s: %s" % (both, dest, RSA[0])]
    failed, result = run(capsys, src=str(both), dest=dest)
    assert not failed and result["fingerprints"] == [RSA[0], ED25519[0]]
    assert "no fingerprints given: accepted every key in %s (%s, %s)" % (both, RSA[0], ED25519[0]) in warnings(result)[0]


def test_checksum(dest, capsys):
    src = os.path.join(KEYS, "rsa.asc")
    good = hashlib.sha256(fixture("rsa.asc")).hexdigest()
    failed, result = run(capsys, src=src, dest=dest, fingerprints=[RSA[0]], checksum="sha256:" + good.upper())
    assert not failed and result["changed"]
    failed, result = run(capsys, src=src, dest=dest + ".2", fingerprints=[RSA[0]], checksum="sha256:" + "0" * 64)
    assert failed and result["msg"] == "%s does not have the checksum given: wanted sha256:%s, got sha256:%s" % (
        src, "0" * 64, good)
    assert not os.path.exists(dest + ".2")
    failed, result = run(capsys, src=src, dest=dest, checksum="md5:abc")
    assert failed and "checksum must be sha256:<64 hex digits>" in result["msg"]


@pytest.mark.parametrize("data, words", [
    (b"", "it is empty"),
    (fixture("rsa.asc").replace(b"PUBLIC KEY BLOCK", b"PRIVATE KEY BLOCK"), "private key block"),
    (fixture("rsa.gpg")[:-10], "is truncated"),
    (fixture("rsa.asc").replace(b"=v4Ck", b"=v4Cl"), "does not match"),
])
def test_what_is_not_a_key_is_refused_and_nothing_is_written(tmp_path, dest, capsys, data, words):
    src = tmp_path / "download"
    src.write_bytes(data)
    failed, result = run(capsys, src=str(src), dest=dest, fingerprints=[RSA[0]])
    assert failed and result["msg"].startswith("%s is not an OpenPGP public key: " % src) and words in result["msg"]
    assert not os.path.exists(os.path.dirname(dest))


@pytest.mark.parametrize("args, words", [
    ({"fingerprints": ["F796ECB0"]}, "fingerprints: 'F796ECB0' has 8 hex digits"),
    ({"mode": "u=rw,go=r"}, "mode must be an octal string"),
    ({"dest": "relative.gpg"}, "dest must be an absolute path"),
    ({"src": None, "url": "ftp://example.invalid/key"}, "url must be an http://, https:// or file:// URL"),
    ({"url": "file:///x"}, "parameters are mutually exclusive: url|src"),
    ({"src": None}, "one of the following is required: url, src"),
])
def test_bad_parameters(dest, capsys, args, words):
    base = {"src": os.path.join(KEYS, "rsa.asc"), "dest": dest}
    base.update(args)
    failed, result = run(capsys, **{k: v for k, v in base.items() if v is not None})
    assert failed and words in result["msg"], result


def test_dest_that_is_a_directory_is_refused(tmp_path, capsys):
    failed, result = run(capsys, src=os.path.join(KEYS, "rsa.asc"), dest=str(tmp_path))
    assert failed and "is a directory" in result["msg"]


def test_missing_file_url_and_src_fail(tmp_path, dest, capsys):
    missing = str(tmp_path / "nothing.asc")
    failed, result = run(capsys, url="file://" + missing, dest=dest, fingerprints=[RSA[0]])
    assert failed and result["msg"].startswith("cannot fetch the key from file://%s: " % missing), result
    failed, result = run(capsys, src=missing, dest=dest, fingerprints=[RSA[0]])
    assert failed and result["msg"].startswith("cannot read the key file %s: " % missing)
    assert not os.path.exists(os.path.dirname(dest))
