# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CUDA workload's container image, made on the node from the node's own files.

No registry is needed: the image holds exactly the files the workload loaded
when run once on the node under the interpreter that has cuda-bindings (its
Python, the standard-library modules it imported, cuda.bindings and
cuda.pathfinder, and the shared libraries mapped into the process: libc,
libstdc++, libffi ...), plus the workload script itself, at the same paths as
on the node. Nothing of the NVIDIA driver goes in (libcuda, libnvidia-*): in
the container those must come from the runtime, which is what the stage proves.

The archive is an OCI image layout (oci-layout, index.json, blobs/) with one
uncompressed layer, which ``ctr images import`` takes. Its tag is a digest of
its contents, so a node imports it once and again only when the interpreter,
the binding or the workload changed.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import io
import json
import os
import platform
import re
import tarfile

SCRIPT = "/gpunode/cuda_workload.py"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
# The driver's own libraries: the runtime must inject them; an image that carried them would prove nothing.
_DRIVER_FILE = re.compile(r"/lib(cuda|nvidia-|nvcuvid|nvoptix)[^/]*$")

# The directories the binding's packages are imported from (cuda.bindings is platlib, cuda.pathfinder
# purelib: two directories on some systems), printed by the interpreter that has them, site on.
SITE = (
    "import os, cuda.bindings.driver, cuda.pathfinder as p; "
    "print(os.pathsep.join(sorted(set(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))))"
    " for m in (cuda.bindings.driver, p)))))"
)
# Run as `python -S -B -c CLOSURE <dir with cuda_workload.py> <SITE's answer>`,
# as the image will run it (no site): the files the workload loads, once the
# binding has tried to reach libcuda (which imports cuda.pathfinder's loaders).
CLOSURE = r"""
import json, os, sys
sys.path[:0] = [sys.argv[1]] + sys.argv[2].split(os.pathsep)
import cuda_workload
api, problem = cuda_workload.import_binding()
if api is None:
    print(json.dumps({"error": problem})); sys.exit(0)
try:
    api.cuInit(0)
except Exception:
    pass
files = set()
for mod in list(sys.modules.values()):
    path = getattr(mod, "__file__", None)
    if path and os.path.isfile(path):
        files.add(os.path.abspath(path))
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split()
        if len(parts) >= 6 and parts[5].startswith("/") and os.path.isfile(parts[5]):
            files.add(parts[5])
stdlib = os.path.dirname(os.path.abspath(os.__file__))
files.add(os.path.join(stdlib, "os.py"))  # the landmark Python looks for to find its prefix
print(json.dumps({"executable": os.path.realpath(sys.executable), "site": sys.argv[2].split(os.pathsep),
                  "version": "%d.%d" % sys.version_info[:2], "files": sorted(files)}))
"""
# The probe runs in this locale, and the image carries none: the container has no LANG, and the
# caller's (en_US.UTF-8 mapping locale-archive, hundreds of MiB on EL) must not change the image.
PROBE_ENV = {"LC_ALL": "C", "LANG": "C"}
_LOCALE_FILE = re.compile(r"^/usr/lib(64)?/(locale/|[^/]*/gconv/|gconv/)")


def closure_files(report, workload_path):
    """The files for the image from CLOSURE's report: the driver's libraries, locales and the probe's own copy left out."""
    skip = os.path.abspath(workload_path) if workload_path else None
    return [path for path in report["files"] if not _DRIVER_FILE.search(path) and not _LOCALE_FILE.search(path)
            and os.path.abspath(path) != skip and not path.endswith(".pyc")]


def _chain(path, seen=None):
    """Entries ('dir'|'link'|'file', path, link target) that make ``path`` resolve the same way in the image."""
    seen = seen if seen is not None else set()
    entries = []
    current = "/"
    parts = [p for p in path.split("/") if p]
    for position, part in enumerate(parts):
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            entries.append(("link", candidate, target))
            resolved = os.path.normpath(target if target.startswith("/") else os.path.join(current, target))
            rest = "/".join(parts[position + 1:])
            if candidate in seen:
                return entries
            seen.add(candidate)
            return entries + _chain(os.path.join(resolved, rest) if rest else resolved, seen)
        if position < len(parts) - 1:
            entries.append(("dir", candidate, None))
        current = candidate
    entries.append(("dir" if os.path.isdir(current) else "file", current, None))
    return entries


def _siblings(path):
    """Symlinks beside a shared library that point to it (its soname: libffi.so.8 -> libffi.so.8.1.2)."""
    directory, name = os.path.split(path)
    if ".so" not in name:
        return []
    stem = name.split(".so", 1)[0] + ".so"
    links = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for other in names:
        full = os.path.join(directory, other)
        if other != name and other.startswith(stem) and os.path.islink(full) and os.path.realpath(full) == os.path.realpath(path):
            links.append(full)
    return sorted(links)


def layout(files, executable):
    """The image's entries, parents first, each path once: [(kind, path, target)]."""
    wanted = []
    for path in list(files) + [executable]:
        wanted.append(path)
        wanted.extend(_siblings(os.path.realpath(path)))
    # The ELF interpreter the binary names (/lib64/ld-linux-x86-64.so.2) is reached through symlinks on merged-/usr systems.
    for loader in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"):
        if os.path.exists(loader):
            wanted.append(loader)
    # The runtime's hook runs ldconfig in the container for the libraries it injects: give it the node's loader config.
    if os.path.isfile("/etc/ld.so.conf"):
        wanted.append("/etc/ld.so.conf")
    if os.path.isdir("/etc/ld.so.conf.d"):
        wanted.extend(os.path.join("/etc/ld.so.conf.d", n) for n in sorted(os.listdir("/etc/ld.so.conf.d")) if n.endswith(".conf"))
    entries, done = [], set()
    for path in wanted:
        if not os.path.exists(path):
            continue  # a dangling link (a left-over alternatives link in ld.so.conf.d): nothing to carry
        for kind, name, target in _chain(path):
            if name not in done:
                done.add(name)
                entries.append((kind, name, target))
    return entries


def _add(tar, name, data=None, link=None, mode=0o755):
    info = tarfile.TarInfo(name.lstrip("/"))
    info.mode, info.mtime, info.uname, info.gname = mode, 0, "root", "root"
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def layer(entries, extra=()):
    """An uncompressed layer tar of ``entries`` (copied from the node) and ``extra``: (path, bytes or None for a dir, mode)."""
    out = io.BytesIO()
    done = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, target in entries:
            done.add(name)
            if kind == "dir":
                _add(tar, name)
            elif kind == "link":
                _add(tar, name, link=target, mode=0o777)
            else:
                with open(name, "rb") as handle:
                    _add(tar, name, handle.read(), mode=os.stat(name).st_mode & 0o7777)
        for path, data, mode in extra:
            parent = os.path.dirname(path)
            if parent not in done and parent != "/":
                _add(tar, parent)
                done.add(parent)
            if path not in done:
                _add(tar, path, data, mode=mode)
                done.add(path)
    return out.getvalue()


def workload_files(script):
    """What the workload image holds besides the node's files: the script, and a /tmp."""
    return [("/tmp", None, 0o1777), (SCRIPT, script, 0o644)]


def content_key(entries, script):
    """A digest of what the image would hold: paths, link targets, sizes and mtimes, and the script."""
    digest = hashlib.sha256(script)
    for kind, name, target in entries:
        stat = os.stat(name) if kind == "file" else None
        digest.update(("%s %s %s %s %s\n" % (kind, name, target, stat.st_size if stat else "", int(stat.st_mtime) if stat else "")).encode())
    return digest.hexdigest()


def archive(layer_data, reference, command):
    """The OCI image layout archive (bytes) of one layer, named ``reference``."""
    arch = ARCH.get(platform.machine(), platform.machine())
    blobs = {}

    def blob(media_type, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": command, "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_data).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob("application/vnd.oci.image.config.v1+json", json.dumps(config, sort_keys=True).encode()),
        "layers": [blob("application/vnd.oci.image.layer.v1.tar", layer_data)],
    }
    entry = blob("application/vnd.oci.image.manifest.v1+json", json.dumps(manifest, sort_keys=True).encode())
    entry["platform"] = {"architecture": arch, "os": "linux"}
    entry["annotations"] = {"io.containerd.image.name": reference, "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), mode=0o644)
        _add(tar, "index.json", json.dumps(index, sort_keys=True).encode(), mode=0o644)
        _add(tar, "blobs")
        _add(tar, "blobs/sha256")
        for digest, data in sorted(blobs.items()):
            _add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data, mode=0o644)
    return out.getvalue()


def command(executable, sites, devices=(), elements=None):
    """The workload's argv in the image."""
    argv = [executable, "-S", "-B", SCRIPT]
    for site in sites:
        argv += ["--sys-path", site]
    for index in devices or ():
        argv += ["--device", str(index)]
    if elements:
        argv += ["--elements", str(elements)]
    return argv
