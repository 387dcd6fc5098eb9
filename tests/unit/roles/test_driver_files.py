"""The driver role's list of the files it writes (_driver_managed_files, what the converged check
compares) names every template task of the role, with the same source and mode: a template task
added without its entry would let a converged re-run skip a file it never read."""

import glob
import os
import re

import yaml

from ..driver_data import ROLE


def template_tasks():
    for path in sorted(glob.glob(os.path.join(ROLE, "tasks", "**", "*.yml"), recursive=True)):
        with open(path) as handle:
            for task in yaml.safe_load(handle) or []:
                if "ansible.builtin.template" in task:
                    yield os.path.relpath(path, ROLE), task["ansible.builtin.template"]


def test_every_template_task_is_in_the_managed_files():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        managed = yaml.safe_load(handle)["_driver_managed_files"]
    entries = re.findall(r"\{'src':\s*([^,]+),\s*'dest':\s*([^,]+),\s*'mode':\s*'(\d{4})'\}", managed)
    assert entries, managed
    listed = dict((src.strip("'"), mode) for src, _dest, mode in entries)
    tasks = list(template_tasks())
    assert len(tasks) == len(entries) == 7, (tasks, entries)
    for where, args in tasks:
        src = args["src"]
        key = src[3:-3].strip() if src.startswith("{{") else src
        assert key in listed, (where, src, sorted(listed))
        assert listed[key] == args["mode"], (where, src)
