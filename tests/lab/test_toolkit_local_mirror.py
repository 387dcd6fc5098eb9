"""The container_toolkit role from a copy of the repository in a directory on the node
(file:// URLs, as air-gapped sites keep it), through site.yml's container_toolkit tag.

The packages are the lab mirror's test doubles of NVIDIA's (see test_mirror.py): the tree
is copied out of the mirror image, not served; apt's signature check is real.
"""

import uuid

import pytest

from .conftest import IMAGE_PREFIX, Nodes, playbook, podman
from .test_preflight_refusals import SNAPSHOT, recap

TREE = "/srv/gpunode-mirror/libnvidia-container"
ON_NODE = "/srv/nvidia-mirror"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    image = IMAGE_PREFIX + "-mirror"
    if podman("image", "exists", image, check=False).returncode != 0:
        pytest.fail("mirror image missing: run lab/lab.sh build")
    fingerprint = podman("image", "inspect", "--format", '{{index .Labels "gpunode.lab.mirror.fingerprint"}}', image).stdout.strip()
    out = tmp_path_factory.mktemp("tree")
    holder = "lab-test-tree-%s" % uuid.uuid4().hex[:6]
    podman("create", "--name", holder, image)
    try:
        podman("cp", "%s:%s" % (holder, TREE), str(out))
    finally:
        podman("rm", "-f", holder, check=False)
    made = Nodes()
    name = made.start("bookworm")
    podman("exec", name, "mkdir", "-p", "/srv")
    podman("cp", str(out / "libnvidia-container"), "%s:%s" % (name, ON_NODE))
    yield made, name, fingerprint
    made.remove()


def test_a_repository_in_a_directory_on_the_node(node, tmp_path):
    made, name, fingerprint = node
    extra = ("container_toolkit_source=mirror container_toolkit_mirror_url=file://%s/stable/deb/$(ARCH)"
             " container_toolkit_mirror_key_url=file://%s/gpgkey container_toolkit_key_fingerprint=%s"
             " container_toolkit_version=1.19.0-1" % (ON_NODE, ON_NODE, fingerprint))
    # Check mode first, on the fresh node: the key and the repository are checked for real, apt
    # cannot see the packages of a repository not yet written, so the role says what it would install.
    before = made.exec(name, "sh", "-c", SNAPSHOT)
    check = playbook([name], tmp_path, "playbooks/site.yml", "--tags", "container_toolkit", "--check", "-e", extra)
    out = check.stdout + check.stderr
    assert check.returncode == 0, out
    assert recap(out, name)["changed"] > 0 and "would install nvidia-container-toolkit" in out, out
    assert made.exec(name, "sh", "-c", SNAPSHOT) == before

    first = playbook([name], tmp_path, "playbooks/site.yml", "--tags", "container_toolkit", "-e", extra)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert recap(out, name)["changed"] > 0
    versions = made.exec(name, "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Want}\n",
                         "nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                         "libnvidia-container1")
    assert sorted(versions.split("\n")[:-1]) == sorted(
        "%s 1.19.0-1 hold" % p for p in ["nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                         "libnvidia-container-tools", "libnvidia-container1"])
    sources = made.exec(name, "cat", "/etc/apt/sources.list.d/gpunode-nvidia-container-toolkit.sources")
    assert "URIs: file://%s/stable/deb/amd64" % ON_NODE in sources and "trusted" not in sources
    again = playbook([name], tmp_path, "playbooks/site.yml", "--tags", "container_toolkit", "-e", extra)
    out = again.stdout + again.stderr
    assert again.returncode == 0 and recap(out, name)["changed"] == 0, out
