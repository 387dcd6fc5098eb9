# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command runner that module_utils readers take as ``run``.

Readers call ``run(argv)`` and get ``(rc, stdout, stderr)``; in a module that
is :func:`make_runner`: argument lists only (no shell), the binary resolved on
PATH plus the sbin directories, and output in the C locale so parsers read
the words they expect. Tests pass a fake instead.
"""

from __future__ import absolute_import, division, print_function

import os

SBIN_DIRS = ["/usr/sbin", "/sbin"]


def make_which(module):
    """which(name): the command's path on the node, or None."""

    def which(name):
        return module.get_bin_path(name, opt_dirs=SBIN_DIRS)

    return which


def make_runner(module):
    """run(argv) for module_utils: resolves the binary and reads in the C locale.

    An absolute ``argv[0]`` (an interpreter path) is run as given; a command
    that is not found answers rc 127, as a shell would.
    """
    which = make_which(module)

    def run(argv):
        binary = argv[0] if os.path.isabs(argv[0]) else which(argv[0])
        if binary is None:
            return 127, "", "%s: not found" % argv[0]
        return module.run_command([binary] + list(argv[1:]), environ_update={"LC_ALL": "C"})

    return run
