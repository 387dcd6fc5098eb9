"""module_utils/toolkit.py and toolkit_state: parsers over nvidia-ctk's output, files
and /dev/char over a temporary tree, and the module's main() for real on this machine."""

import os

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import toolkit
from ansible_collections.gpunode.nvidia.plugins.modules import toolkit_state

from ...utils import FakeRun, run_module


def test_ctk_version_lines():
    assert toolkit.ctk_version("NVIDIA Container Toolkit CLI version 1.20.0\ncommit: 5b1b3ad\n") == "1.20.0"
    assert toolkit.ctk_version("NVIDIA Container Toolkit CLI version 1.18.0-rc.1\n") == "1.18.0-rc.1"
    assert toolkit.ctk_version("") is None and toolkit.ctk_version(None) is None


def test_cdi_devices_from_cdi_list():
    out = 'time="2026-11-30T10:00:00Z" level=info msg="Found 3 CDI devices"\nnvidia.com/gpu=0\nnvidia.com/gpu=GPU-4b1c\nnvidia.com/gpu=all\n'
    assert toolkit.cdi_devices(out) == ["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-4b1c", "nvidia.com/gpu=all"]
    assert toolkit.cdi_devices('level=info msg="Found 0 CDI devices"\n') == []


def test_file_state(tmp_path):
    path = tmp_path / "etc" / "x.sources"
    path.parent.mkdir()
    path.write_text("Types: deb\n")
    os.chmod(str(path), 0o640)
    found = toolkit.file_state("/etc/x.sources", str(tmp_path))
    assert found["exists"] is True and found["mode"] == "0640" and found["content"] == "Types: deb\n"
    assert toolkit.file_state("/etc/none", str(tmp_path)) == {"exists": False, "mode": None, "uid": None, "gid": None, "content": None}
    (tmp_path / "etc" / "key.gpg").write_bytes(b"\x99\x01\xff\xfe")
    assert toolkit.file_state("/etc/key.gpg", str(tmp_path))["content"] is None


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of character devices needs root")
def test_dev_char_links(tmp_path):
    dev = tmp_path / "dev"
    (dev / "char").mkdir(parents=True)
    os.mknod(str(dev / "nvidia0"), 0o600 | 0o020000, os.makedev(195, 0))
    os.mknod(str(dev / "nvidiactl"), 0o600 | 0o020000, os.makedev(195, 255))
    (dev / "nvidia-foo.txt").write_text("not a device")
    os.symlink("../nvidia0", str(dev / "char" / "195:0"))
    assert toolkit.dev_char_links(str(tmp_path)) == {"devices": ["nvidia0", "nvidiactl"], "missing": ["nvidiactl"]}
    assert toolkit.dev_char_links(str(tmp_path / "none")) == {"devices": [], "missing": []}


def test_gather_with_the_toolkit(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    ctk = tmp_path / "usr" / "bin" / "nvidia-ctk"
    ctk.parent.mkdir(parents=True)
    ctk.write_text("#!/bin/sh\n")
    os.chmod(str(ctk), 0o755)
    dpkg = "nvidia-container-toolkit\t1.19.0-1\tinstalled\thold\nlibnvidia-container1\t1.19.0-1\tinstalled\tinstall\n"
    run = FakeRun({
        "dpkg-query": (0, dpkg, ""),
        "/usr/bin/nvidia-ctk": lambda argv: (0, "NVIDIA Container Toolkit CLI version 1.19.0\n", "") if argv[1] == "--version"
        else (0, "nvidia.com/gpu=all\n", ""),
    })
    params = {"packages": ["nvidia-container-toolkit", "libnvidia-container1", "libnvidia-container-tools"],
              "binaries": ["/usr/bin/nvidia-ctk", "/usr/bin/nvidia-container-runtime"], "files": [], "services": [],
              "ctk": "/usr/bin/nvidia-ctk", "cdi_list": True}
    found = toolkit_state.gather(params, run, str(tmp_path))
    assert found["family"] == "Debian"
    assert found["packages"] == {"nvidia-container-toolkit": "1.19.0-1", "libnvidia-container1": "1.19.0-1", "libnvidia-container-tools": None}
    assert found["held"] == ["nvidia-container-toolkit"] and found["ctk_version"] == "1.19.0"
    assert found["binaries"] == {"/usr/bin/nvidia-ctk": True, "/usr/bin/nvidia-container-runtime": False}
    assert found["cdi"] == {"devices": ["nvidia.com/gpu=all"]} and found["driver"] is None


def test_main_reads_this_machine(capsys):
    failed, result = run_module(toolkit_state.main, {"packages": ["nvidia-container-toolkit"], "binaries": ["/bin/sh"],
                                                     "files": ["/etc/os-release"], "ctk": "/nonexistent/nvidia-ctk"}, capsys)
    assert not failed and result["changed"] is False
    assert result["binaries"] == {"/bin/sh": True} and result["ctk_version"] is None and result["cdi"] == {"devices": None}
    assert result["files"]["/etc/os-release"]["exists"] is True and "ID=" in result["files"]["/etc/os-release"]["content"]
