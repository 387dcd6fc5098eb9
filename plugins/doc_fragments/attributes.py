# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


class ModuleDocFragment(object):
    # The attributes of the modules that only read a node.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
"""

    # The attributes of the modules that edit a file in place.
    FILE_EDIT = r"""
attributes:
  check_mode:
    support: full
    description: Computes and reports the change (with a diff) without writing.
  diff_mode:
    support: full
    description: Shows the whole file before and after the change.
"""
