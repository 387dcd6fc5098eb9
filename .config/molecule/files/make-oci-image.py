"""Build a one-layer OCI image archive from the node's busybox, without a registry.

usage: make-oci-image.py OUTPUT.tar NAME:TAG
The archive holds an OCI image layout (oci-layout, index.json, blobs/) that
`ctr images import` takes; the image has /bin/busybox and /bin/sh.
"""

import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


def add(tar, name, data=None, link=None, mode=0o755):
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uname, info.gname = mode, 0, "root", "root"
    if link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif data is None:
        info.type = tarfile.DIRTYPE
    else:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def layer_tar():
    with open(os.path.realpath(shutil.which("busybox")), "rb") as handle:
        busybox = handle.read()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "bin")
        add(tar, "bin/busybox", busybox)
        add(tar, "bin/sh", link="busybox")
    return out.getvalue()


def main(output, name):
    blobs = {}

    def blob(media_type, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer = layer_tar()
    config = {
        "architecture": ARCH,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob("application/vnd.oci.image.config.v1+json", json.dumps(config).encode()),
        "layers": [blob("application/vnd.oci.image.layer.v1.tar", layer)],
    }
    entry = blob("application/vnd.oci.image.manifest.v1+json", json.dumps(manifest).encode())
    entry["platform"] = {"architecture": ARCH, "os": "linux"}
    entry["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]}
    with tarfile.open(output, "w") as tar:
        add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), mode=0o644)
        add(tar, "index.json", json.dumps(index).encode(), mode=0o644)
        add(tar, "blobs")
        add(tar, "blobs/sha256")
        for digest, data in sorted(blobs.items()):
            add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data, mode=0o644)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
