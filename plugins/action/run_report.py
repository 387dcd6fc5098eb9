# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print and write the run report of site.yml on the controller (see the module's docs)."""

from __future__ import absolute_import, division, print_function

import json
import os
import tempfile

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import run_report
from ansible_collections.gpunode.nvidia.plugins.plugin_utils.published import host_fact

display = Display()


def _write(path, text):
    """Replace path with text in one step, so a reader never sees half a report."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self.validate_argument_spec(argument_spec=dict(
            hosts=dict(type="list", elements="str", required=True),
            batch=dict(type="list", elements="str", default=[]),
            dir=dict(type="path", required=True),
        ))[1]
        hostvars = task_vars.get("hostvars") or {}
        hosts, batch = args["hosts"], [h for h in args["batch"] if h in args["hosts"]]
        # The batches run in the order of the play's hosts: those up to this batch's last have had theirs.
        last = max([hosts.index(h) for h in batch] or [len(hosts) - 1])
        reached = set(hosts[:last + 1])
        facts_of = dict((h, dict((f, host_fact(hostvars, h, f)) for f in run_report.READ_FACTS)) for h in hosts)
        failures = dict((h, host_fact(hostvars, h, "gpunode_run_failure")) for h in hosts)
        failures = dict((h, f) for h, f in failures.items() if f)
        # The run ends with this batch when it is the last, or when a node of it failed (the play's
        # max_fail_percentage then decides; the report must not wait for a batch that may never come).
        ends_run = last == len(hosts) - 1 or any(h in failures for h in batch)
        report = run_report.build(hosts, facts_of, failures, reached, check_mode=task_vars.get("ansible_check_mode", False),
                                  ends_run=ends_run)
        directory = os.path.abspath(args["dir"])
        paths = [os.path.join(directory, "run-report.json"), os.path.join(directory, "run-report.md")]
        try:
            os.makedirs(directory, exist_ok=True)
            _write(paths[0], json.dumps(report, indent=2, sort_keys=True) + "\n")
            _write(paths[1], run_report.markdown(report))
        except OSError as error:
            result.update(failed=True, msg="could not write the run report in %s: %s (set gpunode_report_dir to a directory"
                                           " this user can write)" % (directory, error))
            return result
        if ends_run:
            display.display("\n".join(run_report.text_lines(report, paths)))
        else:
            display.display("Batch done (%s); so far %s" % (", ".join(batch), report["tally"]))
        result.update(changed=False, report=report, paths=paths)
        return result
