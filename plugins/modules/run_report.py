#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: run_report
short_description: Print and write the run report of the gpunode.nvidia site playbook
version_added: "0.1.0"
description:
  - Runs on the controller only (an action plugin); it never connects to a node. Run it once per batch (C(run_once)).
  - Reads what every host of the run published (its C(gpunode_preflight), C(gpunode_driver), C(gpunode_container_toolkit),
    C(gpunode_containerd) and C(gpunode_validate) facts) and, for a host that failed a stage, the C(gpunode_run_failure)
    fact the playbook's rescue recorded.
  - "Builds one entry per host (state ready, no GPU, failed with its stage, not validated, unreachable, or not run when
    its batch never started), a tally first (C(6 nodes: 4 ready, 1 no GPU, 1 failed: driver)) and the failures grouped
    by stage and reason, each reason and its fix printed once for all the nodes that share it."
  - Writes C(run-report.json) and C(run-report.md) into O(dir) on the controller in every batch, and prints the report
    as plain text when the run ends with this batch (the last batch, or one in which a node failed); other batches
    print one line.
  - Writes in check mode too (the report is the run's output, not state of a node) and never reports a change.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
options:
  hosts:
    description:
      - Every host of the run, in the play's order (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  batch:
    description:
      - The hosts of this batch (C(ansible_play_batch)); they decide whether the run ends here and which later hosts
        have not been reached.
    type: list
    elements: str
    default: []
  dir:
    description:
      - The directory on the controller for the report files; made when missing. A relative path is relative to the
        directory ansible-playbook runs in.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Writes the report in check mode too; it is the run's output, not a change on a node.
  diff_mode:
    support: none
    description: Changes nothing on a node.
seealso:
  - module: gpunode.nvidia.role_inputs
"""

EXAMPLES = r"""
- name: Report the run
  gpunode.nvidia.run_report:
    hosts: "{{ ansible_play_hosts_all }}"
    batch: "{{ ansible_play_batch }}"
    dir: "{{ gpunode_report_dir | default('gpunode-reports') }}"
  run_once: true
"""

RETURN = r"""
report:
  description: The report written to run-report.json.
  returned: success
  type: dict
  contains:
    tally:
      description: "The first line, for example C(3 nodes: 2 ready, 1 failed: driver)."
      type: str
    check_mode:
      description: Whether the run was in check mode.
      type: bool
    complete:
      description: Whether the run ends with this batch.
      type: bool
    nodes:
      description:
        - One entry per host - host, state, failed_stage, failure, os, arch, gpus (NVML/PCI), driver, toolkit,
          containerd, validate (stage to status), changed (the roles that changed the node in this run), package_manager.
      type: list
      elements: dict
    failures:
      description: The failures grouped - stage, reason, fix, hosts.
      type: list
      elements: dict
paths:
  description: The files written.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    # The work is done by the action plugin of the same name, on the controller.
    module = AnsibleModule(
        argument_spec=dict(hosts=dict(type="list", elements="str", required=True),
                           batch=dict(type="list", elements="str", default=[]),
                           dir=dict(type="path", required=True)),
        supports_check_mode=True,
    )
    module.fail_json(msg="gpunode.nvidia.run_report runs as an action plugin on the controller; it has no node side")


if __name__ == "__main__":
    main()
