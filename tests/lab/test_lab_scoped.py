"""Two labs on one machine: each lab/lab.sh prefix acts on its own nodes, volumes and inventory only."""

import json
import os
import uuid

import pytest

from .conftest import lab, podman


def lab_env(tmp_path, name):
    return {"LAB_NAME_PREFIX": "lab-scope-%s-%s" % (name, uuid.uuid4().hex[:6]),
            "LAB_STATE": str(tmp_path / name)}


def running(prefix):
    out = podman("ps", "--filter", "label=gpunode.lab.prefix=" + prefix, "--format", "{{.Names}}").stdout
    return sorted(out.split())


def volumes(container):
    mounts = json.loads(podman("inspect", "--format", "{{json .Mounts}}", container).stdout)
    return [m["Name"] for m in mounts if m["Type"] == "volume"]


@pytest.fixture
def two_labs(tmp_path):
    labs = [lab_env(tmp_path, "a"), lab_env(tmp_path, "b")]
    yield labs
    for env in labs:
        lab("down", env=env, check=False)


def test_two_labs_up_at_once_and_down_of_one_leaves_the_other(two_labs):
    a, b = two_labs
    lab("up", "bookworm:1", env=a)
    # up starts with a down: of its own prefix only, so a's node survives b's up.
    lab("up", "bookworm:1,trixie:1", env=b)
    a_nodes = [a["LAB_NAME_PREFIX"] + "-bookworm-1"]
    b_nodes = [b["LAB_NAME_PREFIX"] + "-bookworm-1", b["LAB_NAME_PREFIX"] + "-trixie-1"]
    # Each lab has its own package mirror node as well.
    assert running(a["LAB_NAME_PREFIX"]) == sorted(a_nodes + [a["LAB_NAME_PREFIX"] + "-mirror"])
    assert running(b["LAB_NAME_PREFIX"]) == sorted(b_nodes + [b["LAB_NAME_PREFIX"] + "-mirror"])
    # Each prefix has its own inventory, naming its nodes only, with the lab's driver variables.
    a_inv, b_inv = (lab("inventory", env=env).stdout.strip() for env in (a, b))
    assert a_inv == os.path.join(a["LAB_STATE"], "inventory.yml") and a_inv != b_inv
    with open(a_inv) as handle:
        text = handle.read()
    assert a_nodes[0] + ":" in text and b["LAB_NAME_PREFIX"] not in text
    assert "driver_kernel_release: packaged" in text and "driver_nvml_wheel: /" in text
    # cuda-bindings for both lab Pythons (the role's auto on 535/550: 12.*), and cuda-pathfinder.
    assert "driver_cuda_bindings_wheels:" in text and "-cp311-cp311-manylinux" in text and "-cp313-cp313-manylinux" in text
    assert "/cuda_bindings-12." in text and "/cuda_pathfinder-" in text
    a_volumes = volumes(a_nodes[0])
    assert a_volumes

    down = lab("down", env=a)
    assert "removed 1 node(s) and the mirror" in down.stdout
    assert running(a["LAB_NAME_PREFIX"]) == []
    assert not os.path.exists(a_inv)
    for volume in a_volumes:
        assert podman("volume", "exists", volume, check=False).returncode != 0, volume
    # The other lab: its nodes and mirror still running (systemd up), its volumes and inventory in place.
    assert running(b["LAB_NAME_PREFIX"]) == sorted(b_nodes + [b["LAB_NAME_PREFIX"] + "-mirror"])
    for node in b_nodes + [b["LAB_NAME_PREFIX"] + "-mirror"]:
        assert podman("exec", node, "systemctl", "is-system-running").stdout.strip() == "running"
        for volume in volumes(node):
            assert podman("volume", "exists", volume, check=False).returncode == 0, volume
    assert os.path.exists(b_inv)
