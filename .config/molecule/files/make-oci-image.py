"""Build a one-layer OCI image archive from the node's busybox, without a registry.

usage: make-oci-image.py OUTPUT.tar NAME:TAG
The archive holds an OCI image layout (oci-layout, index.json, blobs/) that
`ctr images import` takes; the image has /bin/busybox and /bin/sh. The layout
is written by the collection's own writer (plugins/module_utils/workload_image.py,
which the scenario copies beside this script first: it needs only the stdlib).
"""

import os
import shutil
import sys

sys.path.insert(0, os.environ.get("GPUNODE_OCI_LIB", "/var/tmp/gpunode-oci"))
import workload_image as oci  # noqa: E402 - found through the path above


def main(output, name):
    with open(os.path.realpath(shutil.which("busybox")), "rb") as handle:
        busybox = handle.read()
    layer = oci.layer([("dir", "/bin", None), ("link", "/bin/sh", "busybox")], [("/bin/busybox", busybox, 0o755)])
    with open(output, "wb") as handle:
        handle.write(oci.archive(layer, name, ["/bin/sh"]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
