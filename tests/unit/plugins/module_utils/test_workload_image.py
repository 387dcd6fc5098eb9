"""The workload image: its file closure, symlink chains, and the OCI archive ctr imports."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload, workload_image as oci

WORKLOAD = workload.__file__


def fake_binding(site):
    """A stand-in cuda.bindings.driver package (a test double: cuda-bindings is not installed here) whose cuInit fails like
    the real one without libcuda."""
    package = os.path.join(str(site), "cuda", "bindings")
    os.makedirs(package)  # cuda/ is a namespace package, as the wheels lay it out
    open(os.path.join(package, "__init__.py"), "w").close()
    with open(os.path.join(package, "driver.py"), "w") as handle:
        handle.write("import ctypes\n\ndef cuInit(flags):\n    raise OSError('libcuda.so.1: cannot open shared object file')\n")
    # cuda.pathfinder in a directory of its own, as a purelib/platlib split puts it.
    pathfinder = os.path.join(str(site) + "-purelib", "cuda", "pathfinder")
    os.makedirs(pathfinder)
    open(os.path.join(pathfinder, "__init__.py"), "w").close()


def test_closure_runs_without_site_and_lists_what_the_workload_loads(tmp_path):
    site = tmp_path / "site"
    fake_binding(site)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "cuda_workload.py").write_text(open(WORKLOAD).read())
    found = subprocess.run([sys.executable, "-c", oci.SITE], capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(site) + "-purelib"]))).stdout.strip()
    assert found.split(os.pathsep) == sorted([str(site), str(site) + "-purelib"])
    out = subprocess.run([sys.executable, "-S", "-B", "-c", oci.CLOSURE, str(probe), found], capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["executable"] == os.path.realpath(sys.executable) and report["site"] == found.split(os.pathsep)
    files = oci.closure_files(report, str(probe / "cuda_workload.py"))
    stdlib = os.path.dirname(os.__file__)
    assert os.path.join(str(site), "cuda", "bindings", "driver.py") in files
    for needed in ("os.py", "json/__init__.py", "ctypes/__init__.py", "re/__init__.py" if sys.version_info >= (3, 11) else "re.py"):
        assert os.path.join(stdlib, needed) in files, needed
    assert any("/_ctypes" in path and ".so" in path for path in files)  # the shared libraries mapped, not only .py files
    assert str(probe / "cuda_workload.py") not in files  # the script goes in at its own path


def test_the_driver_s_files_and_locales_never_go_in():
    report = {"files": ["/usr/lib/x86_64-linux-gnu/libcuda.so.580.159.04", "/usr/lib/x86_64-linux-gnu/libnvidia-ptxjitcompiler.so.1",
                        "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/python3/x.pyc", "/tmp/p/cuda_workload.py",
                        "/usr/lib/locale/locale-archive", "/usr/lib/locale/C.utf8/LC_CTYPE", "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
                        "/usr/lib64/gconv/gconv-modules.cache"]}
    assert oci.closure_files(report, "/tmp/p/cuda_workload.py") == ["/usr/lib/x86_64-linux-gnu/libc.so.6"]


def test_symlink_chains_and_sonames_resolve_in_the_image(tmp_path):
    lib = tmp_path / "usr" / "lib"
    lib.mkdir(parents=True)
    (lib / "libffi.so.8.1.2").write_bytes(b"ELF")
    os.symlink("libffi.so.8.1.2", str(lib / "libffi.so.8"))
    os.symlink("usr/lib", str(tmp_path / "lib"))  # merged /usr
    (tmp_path / "python3.11").write_bytes(b"ELF")
    entries = oci.layout([str(tmp_path / "lib" / "libffi.so.8.1.2")], str(tmp_path / "python3.11"))
    names = [name for _kind, name, _target in entries]
    assert len(names) == len(set(names))
    assert ("link", str(tmp_path / "lib"), "usr/lib") in entries
    assert ("file", str(lib / "libffi.so.8.1.2"), None) in entries
    assert ("link", str(lib / "libffi.so.8"), "libffi.so.8.1.2") in entries  # the soname the loader asks for
    assert names.index(str(lib)) < names.index(str(lib / "libffi.so.8.1.2"))  # parents first


def test_a_dangling_link_is_left_out(tmp_path):
    os.symlink(str(tmp_path / "removed-target"), str(tmp_path / "gl.conf"))
    (tmp_path / "python3").write_bytes(b"ELF")
    names = [name for _kind, name, _target in oci.layout([str(tmp_path / "gl.conf")], str(tmp_path / "python3"))]
    assert str(tmp_path / "gl.conf") not in names and str(tmp_path / "python3") in names


def test_archive_is_an_oci_layout_ctr_can_import(tmp_path):
    binary = tmp_path / "python"
    binary.write_bytes(b"\x7fELF-python")
    binary.chmod(0o755)
    entries = [("dir", str(tmp_path), None), ("file", str(binary), None)]
    script = b"print('hi')\n"
    layer = oci.layer(entries, oci.workload_files(script))
    reference = "gpunode.local/gpunode/cuda-workload:" + oci.content_key(entries, script)[:16]
    command = oci.command(str(binary), ["/site", "/site64"], devices=[1], elements=64)
    assert command == [str(binary), "-S", "-B", oci.SCRIPT, "--sys-path", "/site", "--sys-path", "/site64", "--device", "1", "--elements", "64"]
    with tarfile.open(fileobj=io.BytesIO(oci.archive(layer, reference, command))) as archive:
        names = archive.getnames()
        index = json.load(archive.extractfile("index.json"))
        blobs = dict((name.rsplit("/", 1)[1], archive.extractfile(name).read()) for name in names if name.startswith("blobs/sha256/"))
    assert names[:2] == ["oci-layout", "index.json"]
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == reference
    manifest = json.loads(blobs[entry["digest"].split(":")[1]])
    config = json.loads(blobs[manifest["config"]["digest"].split(":")[1]])
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()] == [manifest["layers"][0]["digest"]]
    assert config["config"]["Cmd"] == command
    with tarfile.open(fileobj=io.BytesIO(blobs[manifest["layers"][0]["digest"].split(":")[1]])) as tar:
        members = dict((m.name, m) for m in tar.getmembers())
        assert tar.extractfile(oci.SCRIPT.lstrip("/")).read() == script
        assert members[str(binary).lstrip("/")].mode == 0o755


def test_the_tag_follows_the_contents(tmp_path):
    binary = tmp_path / "python"
    binary.write_bytes(b"one")
    entries = [("file", str(binary), None)]
    first = oci.content_key(entries, b"script")
    assert oci.content_key(entries, b"script") == first
    assert oci.content_key(entries, b"another script") != first
    binary.write_bytes(b"a longer file")
    assert oci.content_key(entries, b"script") != first
