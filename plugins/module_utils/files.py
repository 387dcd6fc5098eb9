# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a configuration file on the node: atomically, keeping what the file had."""

from __future__ import absolute_import, division, print_function

import os
import tempfile


def write_atomic(module, path, text, new_mode=0o644):
    """Replace ``path`` with ``text`` (str, written as UTF-8, or bytes) through a temporary file in its
    directory and ``module.atomic_move``.

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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(target))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
        module.atomic_move(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not existed:
        os.chmod(target, new_mode)
