"""files: a write or a backup interrupted at any point leaves the old file whole and no part of the new."""

import os
import stat

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import files


class Module(object):
    """What write_atomic needs of AnsibleModule: a rename that keeps the old file's mode."""

    def atomic_move(self, src, dest):
        if os.path.exists(dest):
            os.chmod(src, stat.S_IMODE(os.stat(dest).st_mode))
        os.rename(src, dest)


def test_a_write_killed_before_the_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("version = 2\n")

    def power_loss(_fd):
        raise OSError("killed")

    monkeypatch.setattr(files.os, "fsync", power_loss)
    with pytest.raises(OSError):
        files.write_atomic(Module(), str(path), "version = 3\n")
    assert path.read_text() == "version = 2\n"
    assert os.listdir(str(tmp_path)) == ["config.toml"]


def test_a_new_file_gets_its_mode_and_an_old_one_keeps_its_own(tmp_path):
    new, old = tmp_path / "d" / "new.toml", tmp_path / "old.toml"
    old.write_text("a = 1\n")
    old.chmod(0o600)
    files.write_atomic(Module(), str(new), "b = 2\n", 0o640)
    files.write_atomic(Module(), str(old), b"a = 2\n", 0o644)
    assert new.read_text() == "b = 2\n" and stat.S_IMODE(new.stat().st_mode) == 0o640
    assert old.read_text() == "a = 2\n" and stat.S_IMODE(old.stat().st_mode) == 0o600


def test_a_backup_is_whole_keeps_the_mode_or_is_not_there(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text("password = \"x\"\n")
    path.chmod(0o600)
    backup = files.backup_atomic(str(path))
    assert backup.startswith(str(path) + ".%d." % os.getpid()) and backup.endswith("~")
    assert open(backup).read() == "password = \"x\"\n" and stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    os.unlink(backup)

    def power_loss(_fd):
        raise OSError("killed")

    monkeypatch.setattr(files.os, "fsync", power_loss)
    with pytest.raises(OSError):
        files.backup_atomic(str(path))
    assert os.listdir(str(tmp_path)) == ["config.toml"]
