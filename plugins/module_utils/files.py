# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a configuration file on the node: atomically, keeping what the file had.

A run killed at any point (the controller's session lost, the node's power) leaves
either the old file or the new one, never a part: each file is written whole to a
temporary file in the same directory, flushed to disk, then renamed over the old.
Backups are made the same way.
"""

from __future__ import absolute_import, division, print_function

import os
import shutil
import tempfile
import time


def _temporary(directory, name):
    return tempfile.mkstemp(dir=directory, prefix=".%s." % name, suffix=".tmp")


def write_atomic(module, path, text, new_mode=0o644):
    """Replace ``path`` with ``text`` (str, written as UTF-8, or bytes) through a temporary file in its
    directory, flushed to disk, and ``module.atomic_move``.

    A file that exists keeps its mode, owner and SELinux context (atomic_move
    copies them); a link is followed, so the file it points to is written and
    the link stays. A new file gets ``new_mode``, and its directory is made
    (0755) when missing.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    existed = os.path.exists(target)
    fd, tmp = _temporary(directory, os.path.basename(target))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        module.atomic_move(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not existed:
        os.chmod(target, new_mode)


def backup_atomic(path):
    """Copy ``path`` to ``<path>.<pid>.<time>~`` (the name Ansible's backups have) with its mode and
    owner, whole or not at all; returns the backup's path."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    backup = "%s.%s.%s" % (target, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~", time.localtime()))
    fd, tmp = _temporary(directory, os.path.basename(target))
    try:
        with open(target, "rb") as source, os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.copystat(target, tmp)
        info = os.stat(target)
        os.chown(tmp, info.st_uid, info.st_gid)
        os.rename(tmp, backup)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return backup
