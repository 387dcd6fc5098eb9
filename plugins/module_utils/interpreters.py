# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding a Python on the node that has a library the module's own Python lacks.

The NVIDIA bindings (nvidia-ml-py, cuda-bindings) live in the venv the driver
role prepares, not in the system Python Ansible runs modules under: a module
that needs one re-runs itself under the first interpreter that can import it.
Node code: keep the syntax Python 3.6 can read.
"""

from __future__ import absolute_import, division, print_function

import sys

try:
    from ansible.module_utils.common.respawn import has_respawned, probe_interpreters_for_module, respawn_module
except ImportError:  # ansible-core older than 2.11: no respawn, only the hint.
    has_respawned = probe_interpreters_for_module = respawn_module = None

# The venv the driver role prepares first, then the system Pythons of the
# supported OSes (EL8's platform-python is 3.6).
DEFAULT_INTERPRETERS = (
    "/opt/gpunode/venv/bin/python3",
    "/usr/bin/python3",
    "/usr/libexec/platform-python",
    "/usr/bin/python3.12",
    "/usr/bin/python3.11",
    "/usr/bin/python3.9",
)


def respawn_for(import_name, interpreters=()):
    """Re-run the module under the first interpreter that imports ``import_name``; returns the ones tried when none does.

    Returns only when no respawn happened (the respawned module's result ends this process otherwise).
    """
    tried = []
    for path in list(interpreters or ()) + list(DEFAULT_INTERPRETERS):
        if path and path != sys.executable and path not in tried:
            tried.append(path)
    if respawn_module is not None and not has_respawned():
        found = probe_interpreters_for_module(tried, import_name)
        if found:
            respawn_module(found)
    return tried
