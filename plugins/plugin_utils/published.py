# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading what another host published (its gpunode_<role> facts) from hostvars, never failing on a gap."""

from __future__ import absolute_import, division, print_function


def host_fact(hostvars, host, name):
    """hostvars[host][name], or None where the host or the fact is not there (a host not in this run)."""
    try:
        value = hostvars[host].get(name)
    except (KeyError, AttributeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def first_fact(hostvars, hosts, name):
    """The fact ``name`` of the first of ``hosts`` that published it, or None."""
    for host in hosts or []:
        value = host_fact(hostvars, host, name)
        if value is not None:
            return value
    return None
