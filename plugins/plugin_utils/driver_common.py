# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the driver role's three steps share (plugin_utils/driver_plan.py,
driver_changes.py, driver_outcome.py): package version and template helpers.
"""

from __future__ import absolute_import, division, print_function


def fmt(template, **values):
    """A per-OS data template (``nvidia-kernel-dkms={version}-*``) filled in."""
    return template.format(**values)


def upstream(package_version):
    """'3:550.54.15-1.el9' -> '550.54.15'; None stays None."""
    if not package_version:
        return None
    version = package_version.split(":", 1)[1] if ":" in package_version else package_version
    return version.split("-", 1)[0]
