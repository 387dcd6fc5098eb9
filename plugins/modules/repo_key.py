#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: repo_key
short_description: Fetch a repository's OpenPGP key, check its fingerprint, and install it as a keyring file
version_added: "0.1.0"
description:
  - Reads an OpenPGP public key from a URL (V(http), V(https) or V(file)) or from a file on the node,
    checks that it is one (ASCII armor with its CRC24 checksum when present, or binary packets),
    that one of its primary keys has an accepted fingerprint, and, when given, the checksum of the
    bytes read. Then writes the keys to O(dest), dearmored by default, for apt's C(signed-by) or
    dnf's C(gpgkey=file://).
  - The key is fetched and checked also in check mode (reading is not a change), so a play can run
    this first and stop, with the node untouched, when the key cannot be had or is not the right one.
  - Refuses with a clear message an HTML error page, a private key, a signature, an empty file,
    truncated or corrupt data, obsolete version 3 keys, and a fingerprint that is not accepted
    (naming the fingerprints wanted and found).
  - When O(fingerprints) is given, only the primary keys it names are written (with their user IDs,
    subkeys and signatures); other keys in the file are left out with a warning, since apt would
    trust them for the repository too.
  - Needs neither gpg nor any library beyond the Python standard library (3.6 or later), so it
    works on minimal nodes where apt verifies with C(gpgv) or C(sqv). Fingerprints are computed as
    in RFC 4880 (version 4 keys, SHA-1) and RFC 9580 (version 6, and LibrePGP's version 5, SHA-256).
    Signatures are not verified here; apt and dnf verify the repository's signatures with the key.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Fetches, parses and checks the key and reports the change (with a diff) without writing.
  diff_mode:
    support: full
    description: Shows the keys (fingerprints, user IDs, subkeys), format, mode and SHA-256 before and after, not the bytes.
options:
  url:
    description:
      - Where to fetch the key, an V(http://), V(https://) or V(file://) URL.
      - A plain V(http://) URL (or O(validate_certs=false)) needs O(fingerprints) or O(checksum),
        since an unverified download is refused.
      - Exactly one of O(url) and O(src) is given.
    type: str
  src:
    description:
      - A key file already on the node (an air-gapped site's copy), checked like a download.
    type: path
  dest:
    description:
      - The keyring file to write, owned by the user the module runs as (root on a node).
      - Its directory is created (mode 0755) when missing.
    type: path
    required: true
  fingerprints:
    description:
      - Accepted fingerprints of primary keys, 40 (version 4) or 64 (versions 5 and 6) hex digits;
        spaces and case do not matter. Short and long key IDs are refused, since they can be forged.
      - At least one primary key must match. An empty list accepts any well-formed public key, with
        a warning that names what was found.
    type: list
    elements: str
    default: []
  checksum:
    description:
      - V(sha256:<hex>) of the bytes read (before dearmoring), as with M(ansible.builtin.get_url).
    type: str
  format:
    description:
      - V(binary) writes the packets (what C(gpg --dearmor) gives), which apt's C(signed-by),
        C(gpgv), C(sqv) and rpm all read; V(armored) writes them ASCII-armored, with a CRC24 line.
    type: str
    choices: [binary, armored]
    default: binary
  mode:
    description:
      - Permissions of O(dest), an octal string such as V('0644') or a number. Symbolic modes are not taken.
    type: raw
    default: '0644'
  timeout:
    description: Seconds to wait for the server.
    type: int
    default: 30
  validate_certs:
    description: Check the server's TLS certificate for an V(https://) URL.
    type: bool
    default: true
notes:
  - A changed mode alone is a change; the file is then not written again, only its mode set.
  - An RFC 9580 reader may ignore a wrong armor checksum; this module refuses it, since a corrupt
    key download should stop the run.
seealso:
  - module: ansible.builtin.deb822_repository
  - module: ansible.builtin.yum_repository
  - name: RFC 9580, OpenPGP
    description: Packet framing, armor and fingerprints.
    link: https://www.rfc-editor.org/rfc/rfc9580
"""

EXAMPLES = r"""
- name: Install the NVIDIA container toolkit's repository key, pinned, for apt's signed-by
  gpunode.nvidia.repo_key:
    url: https://nvidia.github.io/libnvidia-container/gpgkey
    fingerprints:
      - C95B 321B 61E8 8C18 09C4  F759 DDCA E044 F796 ECB0
    dest: /etc/apt/keyrings/gpunode-nvidia-container-toolkit.gpg

- name: The same key from a mirror, with its checksum
  gpunode.nvidia.repo_key:
    url: http://mirror.example.internal/nvidia/libnvidia-container/gpgkey
    checksum: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    fingerprints: [C95B321B61E88C1809C4F759DDCAE044F796ECB0]
    dest: /etc/apt/keyrings/gpunode-nvidia-container-toolkit.gpg

- name: An air-gapped site's copy, kept armored for dnf
  gpunode.nvidia.repo_key:
    src: /srv/mirror/nvidia/gpgkey
    fingerprints: [C95B321B61E88C1809C4F759DDCAE044F796ECB0]
    dest: /etc/pki/rpm-gpg/RPM-GPG-KEY-gpunode-nvidia-container-toolkit
    format: armored
"""

RETURN = r"""
dest:
  description: The keyring file.
  returned: always
  type: str
  sample: /etc/apt/keyrings/gpunode-nvidia-container-toolkit.gpg
fingerprints:
  description: Fingerprints of the primary keys written, upper-case hex.
  returned: always
  type: list
  elements: str
  sample: [C95B321B61E88C1809C4F759DDCAE044F796ECB0]
subkeys:
  description: Fingerprints of their subkeys, upper-case hex.
  returned: always
  type: list
  elements: str
uids:
  description: Their user IDs.
  returned: always
  type: list
  elements: str
  sample: ["NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>"]
keys:
  description: Per primary key written, C(fingerprint), C(version), C(algorithm), C(created) (UTC), C(uids) and C(subkeys).
  returned: always
  type: list
  elements: dict
format:
  description: The format written, C(binary) or C(armored).
  returned: always
  type: str
  sample: binary
mode:
  description: Permissions of the file, octal.
  returned: always
  type: str
  sample: '0644'
sha256:
  description: SHA-256 of the bytes written (or that would be, in check mode).
  returned: always
  type: str
source_sha256:
  description: SHA-256 of the bytes read, for O(checksum).
  returned: always
  type: str
content_base64:
  description:
    - The key as it is (or would be) written, base64-encoded (public key material only), so a caller can check a
      repository's signature with it in a scratch directory before writing anything.
  returned: always
  type: str
"""

import base64
import hashlib
import os
import re
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.urls import fetch_url

from ansible_collections.gpunode.nvidia.plugins.module_utils import files, openpgp

MAX_BYTES = 1024 * 1024  # far more than any key file; anything larger is not one
SCHEMES = ("http", "https", "file")


def octal_mode(module, value):
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.match(r"^0?[0-7]{3,4}$", value.strip()):
        mode = int(value.strip(), 8)
    else:
        module.fail_json(msg="mode must be an octal string such as '0644' or a number, got %r" % (value,))
    if mode < 0 or mode > 0o7777:
        module.fail_json(msg="mode %r is out of range" % (value,))
    return mode


def check_params(module):
    params = module.params
    if not os.path.isabs(params["dest"]):
        module.fail_json(msg="dest must be an absolute path, got %r" % params["dest"])
    if os.path.isdir(params["dest"]):
        module.fail_json(msg="dest %s is a directory; give the keyring file's path" % params["dest"])
    wanted = []
    for text in params["fingerprints"]:
        try:
            wanted.append(openpgp.normalize_fingerprint(text))
        except openpgp.OpenPGPError as exc:
            module.fail_json(msg="fingerprints: %s" % to_native(exc))
    checksum = None
    if params["checksum"]:
        match = re.match(r"^sha256:([0-9A-Fa-f]{64})$", params["checksum"].strip())
        if not match:
            module.fail_json(msg="checksum must be sha256:<64 hex digits>, got %r" % params["checksum"])
        checksum = match.group(1).lower()
    url = params["url"]
    if url is not None:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in SCHEMES:
            module.fail_json(msg="url must be an http://, https:// or file:// URL, got %r" % url)
        insecure = scheme == "http" or (scheme == "https" and not params["validate_certs"])
        if insecure and not wanted and not checksum:
            module.fail_json(
                msg="refusing an unverified download: %s is fetched %s and neither fingerprints nor checksum is "
                    "given; give the key's fingerprints" % (url, "over plain HTTP" if scheme == "http"
                                                            else "without checking the certificate")
            )
    return wanted, checksum, octal_mode(module, params["mode"])


def fetch(module, url):
    """The bytes at ``url``; fails the module with the reason when they cannot be had."""
    response, info = fetch_url(module, url, timeout=module.params["timeout"])
    status = info.get("status")
    if response is None or (status != 200 and not url.lower().startswith("file:")):
        module.fail_json(msg="cannot fetch the key from %s: %s" % (url, info.get("msg") or "HTTP %s" % status),
                         status=status)
    try:
        data = response.read(MAX_BYTES + 1)
    except Exception as exc:  # a reset or timeout in the middle of the body
        module.fail_json(msg="cannot fetch the key from %s: %s" % (url, to_native(exc)))
    finally:
        response.close()
    return data


def read_source(module):
    params = module.params
    if params["url"] is not None:
        return params["url"], fetch(module, params["url"])
    try:
        with open(params["src"], "rb") as handle:
            return params["src"], handle.read(MAX_BYTES + 1)
    except OSError as exc:
        module.fail_json(msg="cannot read the key file %s: %s" % (params["src"], to_native(exc)))


def choose(module, source, keyring, wanted):
    """The keys to write: those named in ``wanted`` (all when it is empty)."""
    found = keyring.fingerprints
    if not wanted:
        module.warn("no fingerprints given: accepted every key in %s (%s) without pinning; set fingerprints to "
                    "them once checked" % (source, ", ".join(found)))
        return keyring
    keep = [fpr for fpr in found if fpr in wanted]
    if not keep:
        described = ["%s (%s)" % (key["fingerprint"], "; ".join(key["uids"]) or "no user ID") for key in keyring.keys]
        msg = "%s holds no key with an accepted fingerprint: wanted %s, found %s" % (
            source, ", ".join(wanted), ", ".join(described))
        for key in keyring.keys:
            for fpr in wanted:
                if fpr in key["subkeys"]:
                    msg += "; %s is a subkey of %s, and fingerprints lists primary keys" % (fpr, key["fingerprint"])
        module.fail_json(msg=msg, fingerprints_found=found)
    left = [fpr for fpr in found if fpr not in wanted]
    if left:
        module.warn("%s also holds keys not in fingerprints, left out of %s: %s" % (
            source, module.params["dest"], ", ".join(left)))
    return keyring.subset(keep)


def current_state(dest):
    """(bytes or None, mode or None, (uid, gid) or None) of ``dest``."""
    try:
        st = os.stat(dest)
        with open(dest, "rb") as handle:
            return handle.read(), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    except OSError:
        return None, None, None


def describe(data, mode):
    """A short text summary of a keyring file, for the diff."""
    if data is None:
        return ""
    try:
        keyring, armored = openpgp.parse(data)
        lines = openpgp.summary(keyring) + ["format: %s" % ("armored" if armored else "binary")]
    except openpgp.OpenPGPError as exc:
        lines = ["not an OpenPGP public key: %s" % to_native(exc)]
    lines += ["mode: %04o" % mode, "sha256: %s" % hashlib.sha256(data).hexdigest()]
    return "\n".join(lines) + "\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            src=dict(type="path"),
            dest=dict(type="path", required=True),
            fingerprints=dict(type="list", elements="str", default=[]),
            checksum=dict(type="str"),
            format=dict(type="str", choices=["binary", "armored"], default="binary"),
            mode=dict(type="raw", default="0644"),
            timeout=dict(type="int", default=30),
            validate_certs=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("url", "src")],
        required_one_of=[("url", "src")],
        supports_check_mode=True,
    )
    params = module.params
    wanted, checksum, mode = check_params(module)
    dest = params["dest"]

    source, data = read_source(module)
    source_sha256 = hashlib.sha256(data).hexdigest()
    if len(data) > MAX_BYTES:
        module.fail_json(msg="%s is not an OpenPGP public key: it is larger than %d bytes" % (source, MAX_BYTES))
    if checksum and source_sha256 != checksum:
        module.fail_json(msg="%s does not have the checksum given: wanted sha256:%s, got sha256:%s"
                             % (source, checksum, source_sha256), source_sha256=source_sha256)
    try:
        keyring, _armored = openpgp.parse(data)
    except openpgp.OpenPGPError as exc:
        module.fail_json(msg="%s is not an OpenPGP public key: %s" % (source, to_native(exc)),
                         source_sha256=source_sha256)
    keyring = choose(module, source, keyring, wanted)
    packets = keyring.binary()
    content = packets if params["format"] == "binary" else openpgp.armor(packets)

    before, before_mode, before_owner = current_state(dest)
    as_root = os.geteuid() == 0
    write_needed = before != content
    mode_needed = not write_needed and before_mode != mode
    owner_needed = not write_needed and as_root and before_owner != (0, 0)
    changed = write_needed or mode_needed or owner_needed
    result = dict(
        changed=changed,
        dest=dest,
        fingerprints=keyring.fingerprints,
        subkeys=[sub for key in keyring.keys for sub in key["subkeys"]],
        uids=[name for key in keyring.keys for name in key["uids"]],
        keys=keyring.keys,
        format=params["format"],
        mode="%04o" % mode,
        sha256=hashlib.sha256(content).hexdigest(),
        source_sha256=source_sha256,
        content_base64=base64.b64encode(content).decode("ascii"),
    )
    if module._diff and changed:
        result["diff"] = {
            "before_header": dest if before is not None else "%s (absent)" % dest,
            "after_header": dest,
            "before": describe(before, before_mode),
            "after": describe(content, mode),
        }
    if changed and not module.check_mode:
        try:
            if write_needed:
                files.write_atomic(module, dest, content, mode)
            if as_root:
                os.chown(dest, 0, 0)
            os.chmod(dest, mode)  # atomic_move keeps the mode of the file it replaces
        except OSError as exc:
            module.fail_json(msg="cannot write %s: %s" % (dest, to_native(exc)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
