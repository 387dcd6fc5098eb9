"""cuda_workload_image through its main(): the probes and ctr answered by a test double (no containerd here)."""

import io
import json
import os
import tarfile

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpunode.nvidia.plugins.module_utils import workload_image as oci
from ansible_collections.gpunode.nvidia.plugins.modules import cuda_workload_image

from ...utils import run_module

NAME = "gpunode.local/gpunode/cuda-workload"


class Node(object):
    """Answers the module's commands: the interpreter probes (SITE, CLOSURE over small files of this test's own) and ctr."""

    def __init__(self, tmp_path, images=(), fail=None):
        self.python = str(tmp_path / "venv-python3")
        open(self.python, "w").close()
        self.lib = tmp_path / "usr" / "lib"
        self.lib.mkdir(parents=True, exist_ok=True)
        (self.lib / "libc.so.6").write_bytes(b"\x7fELF libc")
        (self.lib / "libcuda.so.1").write_bytes(b"\x7fELF the driver's")
        self.images = list(images)
        self.fail = fail or {}
        self.calls, self.imported, self.envs = [], [], []

    def closure(self):
        return {"executable": self.python, "site": ["/opt/gpunode/venv/lib/python3.11/site-packages"], "version": "3.11",
                "files": [str(self.lib / "libc.so.6"), str(self.lib / "libcuda.so.1")]}

    def __call__(self, argv, environ_update=None, **_kwargs):
        self.calls.append(argv)
        self.envs.append(environ_update)
        if argv[0] == self.python:
            if "-S" in argv:
                return 0, json.dumps(self.closure()) + "\n", ""
            return 0, "/opt/gpunode/venv/lib/python3.11/site-packages\n", ""
        verb = " ".join(argv[3:5])
        if verb in self.fail:
            return 1, "", self.fail[verb]
        if verb == "images ls":
            return 0, "".join(ref + "\n" for ref in self.images), ""
        if verb == "images import":
            with open(argv[5], "rb") as archive:
                self.imported.append(archive.read())
            return 0, "unpacking ...done\n", ""
        if verb == "images rm":
            self.images.remove(argv[5])
            return 0, argv[5] + "\n", ""
        raise AssertionError("unexpected command %s" % argv)


@pytest.fixture
def node(monkeypatch, tmp_path):
    def use(**kwargs):
        fake = Node(tmp_path, **kwargs)
        monkeypatch.setattr(AnsibleModule, "run_command", fake)  # an instance, not a function: called without the module
        monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name)
        return fake

    return use


def args(fake, **extra):
    return dict({"python_interpreters": [fake.python], "workdir": os.path.dirname(fake.python)}, **extra)


def layer_names(archive):
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(outer.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        layer = outer.extractfile("blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return index["manifests"][0]["annotations"]["io.containerd.image.name"], tar.getnames()


def test_first_run_imports_the_image_without_the_driver_s_library(node, capsys):
    fake = node()
    failed, result = run_module(cuda_workload_image.main, args(fake), capsys)
    assert not failed and result["changed"] is True and result["present"] is True and result["size_bytes"] > 0
    assert result["image"].startswith(NAME + ":") and len(result["image"].rsplit(":", 1)[1]) == 16
    assert result["command"] == [fake.python, "-S", "-B", oci.SCRIPT, "--sys-path", "/opt/gpunode/venv/lib/python3.11/site-packages"]
    reference, names = layer_names(fake.imported[0])
    assert reference == result["image"]
    assert str(fake.lib / "libc.so.6").lstrip("/") in names and oci.SCRIPT.lstrip("/") in names
    assert not [n for n in names if "libcuda" in n]
    # The probes ran in the C locale, whatever the caller's; the archive was removed after the import.
    assert [env for argv, env in zip(fake.calls, fake.envs) if argv[0] == fake.python] == [oci.PROBE_ENV, oci.PROBE_ENV]
    assert not [n for n in os.listdir(os.path.dirname(fake.python)) if n.startswith("gpunode-cuda-image-")]


def test_an_image_already_there_changes_nothing(node, capsys):
    first = node()
    _failed, result = run_module(cuda_workload_image.main, args(first), capsys)
    again = node(images=[result["image"], "gpunode.local/validate/busybox:1"])
    failed, second = run_module(cuda_workload_image.main, args(again), capsys)
    assert not failed and second["changed"] is False and second["present"] is True and second["image"] == result["image"]
    assert not again.imported


def test_a_new_tag_replaces_the_old_one(node, capsys):
    fake = node(images=[NAME + ":0000000000000000", "gpunode.local/validate/busybox:1"])
    failed, result = run_module(cuda_workload_image.main, args(fake), capsys)
    assert not failed and result["changed"] is True and result["removed"] == [NAME + ":0000000000000000"]
    assert fake.images == ["gpunode.local/validate/busybox:1"]


def test_check_mode_imports_and_removes_nothing(node, capsys):
    fake = node(images=[NAME + ":0000000000000000"])
    failed, result = run_module(cuda_workload_image.main, args(fake, _ansible_check_mode=True), capsys)
    assert not failed and result["changed"] is True and result["present"] is False
    assert result["removed"] == [NAME + ":0000000000000000"] and fake.images == [NAME + ":0000000000000000"] and not fake.imported


@pytest.mark.parametrize(("verb", "message"), [
    ("images import", "ctr images import of the workload image failed: ctr: unrecognized image format"),
    ("images ls", "ctr images ls failed (is containerd running?): ctr: unrecognized image format"),
])
def test_ctr_failures_are_named_and_change_nothing(node, capsys, verb, message):
    fake = node(fail={verb: "ctr: unrecognized image format"})
    failed, result = run_module(cuda_workload_image.main, args(fake), capsys)
    assert failed and result["msg"] == message and result["changed"] is False


def test_an_old_tag_that_cannot_be_removed_fails(node, capsys):
    fake = node(images=[NAME + ":0000000000000000"], fail={"images rm": "ctr: image in use"})
    failed, result = run_module(cuda_workload_image.main, args(fake), capsys)
    assert failed and result["msg"] == "ctr images rm %s:0000000000000000 (an older workload image) failed: ctr: image in use" % NAME
    assert result["removed"] == []


def test_a_name_with_a_tag_is_refused(node, capsys):
    fake = node()
    failed, result = run_module(cuda_workload_image.main, args(fake, name=NAME + ":latest"), capsys)
    assert failed and "without a tag or digest" in result["msg"] and fake.calls == []
