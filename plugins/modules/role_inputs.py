#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: role_inputs
short_description: Check the gpunode.nvidia role variables on the controller before any change
version_added: "0.1.0"
description:
  - Runs on the controller only (an action plugin); it never connects to the node.
  - Checks every variable of the collection's roles that the play sets (inventory, group and host vars, extra vars,
    play vars) against the role's argument spec, and against what an argument spec cannot express - ranges
    (C(validate_gpu_count) >= -1), regular expressions (C(validate_product_pattern)), driver and CUDA version
    formats, the containerd runtime name as a DNS-1123 label (a RuntimeClass handler must be one), and settings that
    contradict each other (C(containerd_runtime_default) with C(containerd_runtime_state=absent)).
  - Fails with one line per problem, each naming the variable, and nothing else.
  - Warns about every variable that carries a role's prefix (C(preflight_), C(driver_), C(containerd_), C(validate_))
    but is no role's variable, with the nearest known name (a typo Ansible would otherwise ignore). Variables of other
    well-known collections that share the C(containerd_) prefix (kubespray, geerlingguy.containerd) are not reported.
  - The gpunode.nvidia.preflight role runs it first, so that every role of the play is checked before anything on the
    node changes. Variables given as role parameters (C(vars) of one role in a play) are checked by that role's own
    argument spec when it starts.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
options:
  roles:
    description:
      - The roles whose variables to check; default every role of the collection.
    type: list
    elements: str
  warn_unknown:
    description:
      - Warn about variables with a role's prefix that no role defines.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads variables only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
notes:
  - A value that names a fact a later role publishes (for example C({{ gpunode_driver.version }})) cannot be known
    yet; the role that reads it checks it when it starts.
seealso:
  - module: gpunode.nvidia.preflight_facts
"""

EXAMPLES = r"""
- name: Check the role variables before any change
  gpunode.nvidia.role_inputs:

- name: Check only the validate role's variables, without typo warnings
  gpunode.nvidia.role_inputs:
    roles: [validate]
    warn_unknown: false
"""

RETURN = r"""
checked:
  description: The role variables whose values were checked.
  returned: when the check passed
  type: list
  elements: str
unknown:
  description: Variables with a role's prefix that no role defines.
  returned: when O(warn_unknown) is true
  type: list
  elements: str
problems:
  description: One line per refused value, each naming its variable.
  returned: when the check failed
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    # The work is done by the action plugin of the same name, on the controller.
    module = AnsibleModule(
        argument_spec=dict(roles=dict(type="list", elements="str"), warn_unknown=dict(type="bool", default=True)),
        supports_check_mode=True,
    )
    module.fail_json(msg="gpunode.nvidia.role_inputs runs as an action plugin on the controller; it has no node side")


if __name__ == "__main__":
    main()
