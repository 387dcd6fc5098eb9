#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function


DOCUMENTATION = r"""
---
module: package_repair
short_description: Wait for the package manager's locks and repair what a killed run left half-done
version_added: "0.2.0"
description:
  - Reads the package manager's health (see the C(package_manager) part of M(gpunode.nvidia.preflight_facts)).
  - While another process holds its locks (a live apt or dnf run, or one a killed controller left running
    on the node), waits for them, up to O(lock_timeout) seconds, then reads the health again.
  - When a run was killed half-way (an interrupted dpkg, packages half-installed, unpacked or
    half-configured, triggers not run; on EL both versions of a package installed), repairs it with the
    package manager's own commands, in order, and checks that the repair worked. On Debian and Ubuntu
    C(dpkg --configure -a), then C(apt-get -f install), then a reinstall of packages whose files were
    left half-written; on EL C(dnf remove --duplicates). Configuration files a user changed are kept
    (C(--force-confold)).
  - With O(repair=false) it stops instead, naming the packages and the exact commands.
author:
  - gpunode.nvidia maintainers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reads the health and reports the commands it would run, without waiting or running them.
  diff_mode:
    support: none
    description: Runs the package manager's commands; there is no file to show.
options:
  repair:
    description: Repair a package manager left half-way. When false, fail with the commands to run by hand.
    type: bool
    default: true
  lock_timeout:
    description: Seconds to wait for another process to release the package manager's locks before failing.
    type: int
    default: 600
notes:
  - The EL path (dnf) is unit-tested only; no EL node can be reached from the project's lab.
"""

EXAMPLES = r"""
- name: Repair the package manager before installing anything
  gpunode.nvidia.package_repair:
    lock_timeout: 300

- name: Only check; stop with the exact commands when a repair is needed
  gpunode.nvidia.package_repair:
    repair: false
"""

RETURN = r"""
before:
  description: The health read first (manager, interrupted, pending, locks, healthy, repair).
  returned: always
  type: dict
after:
  description: The health after waiting and repairing.
  returned: always
  type: dict
waited_s:
  description: Seconds spent waiting for other processes' locks.
  returned: always
  type: int
waited_for:
  description: The lock holders waited for, as "PID n (command) on PATH".
  returned: always
  type: list
  elements: str
repaired:
  description: What was wrong and has been repaired, in one line (empty when nothing was).
  returned: always
  type: str
  sample: "dpkg was interrupted; half-configured: containerd"
commands:
  description: The repair commands run (in check mode, those that would run), with their exit status and last output lines.
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpunode.nvidia.plugins.module_utils import host, pkg_health, pkg_locks
from ansible_collections.gpunode.nvidia.plugins.module_utils.runner import make_runner

POLL_SECONDS = 2
_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}


def tail(text, lines=15):
    return "\n".join((text or "").strip().splitlines()[-lines:])


def wait_for_locks(module, read, timeout, state):
    """Poll from ``state`` until no lock is held; returns (state, seconds waited, holders seen). Fails at the timeout."""
    start = time.time()
    seen = []
    while state["locks"] and not module.check_mode:
        for lock in state["locks"]:
            if pkg_locks.describe(lock) not in seen:
                seen.append(pkg_locks.describe(lock))
        waited = int(time.time() - start)
        if waited >= timeout:
            module.fail_json(
                msg="the package manager's lock is still held after %d s by %s: let that run finish (or stop it), then run again;"
                " preflight_package_lock_timeout sets how long to wait" % (waited, pkg_locks.describe_all(state["locks"])),
                after=state,
                waited_s=waited,
                waited_for=seen,
            )
        time.sleep(POLL_SECONDS)
        state = read()
    return state, int(time.time() - start), seen


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repair=dict(type="bool", default=True),
            lock_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )
    family = host.os_facts("/")["family"]
    run = make_runner(module)

    def read():
        return pkg_health.health(family, run)

    before = read()
    state, waited, seen = wait_for_locks(module, read, module.params["lock_timeout"], before)
    result = dict(changed=False, before=before, after=state, waited_s=waited, waited_for=seen, repaired="", commands=[])
    if state["healthy"]:
        module.exit_json(**result)
    wrong = pkg_health.summary(state)
    planned = pkg_health.repair_commands(family, state)
    if not module.params["repair"]:
        module.fail_json(
            msg="the package manager was left half-way (%s). Repair it with: %s (or set preflight_package_repair: true to let the role do it)"
            % (wrong, " && ".join(pkg_health.command_line(c) for c in planned)),
            **result
        )
    if module.check_mode:
        result.update(changed=True, repaired=wrong, commands=[{"command": pkg_health.command_line(c)} for c in planned])
        module.exit_json(**result)
    for argv in planned:
        binary = module.get_bin_path(argv[0], required=True)
        rc, out, err = module.run_command([binary] + argv[1:], environ_update=_ENV)
        result["commands"].append({"command": pkg_health.command_line(argv), "rc": rc, "output": tail(out + "\n" + err)})
        result["after"] = read()
        if result["after"]["healthy"]:
            break
    result.update(changed=True, repaired=wrong)
    # Said at any verbosity, also when the run is cut short before its report.
    module.warn("the package manager was left half-way (%s); repaired with %s" % (wrong, " && ".join(c["command"] for c in result["commands"])))
    if not result["after"]["healthy"]:
        module.fail_json(
            msg="the package manager is still half-way after %s (%s); its last output:\n%s"
            % (" && ".join(c["command"] for c in result["commands"]), pkg_health.summary(result["after"]), result["commands"][-1]["output"]),
            **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
