# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the collection's role variables on the controller, before any change (see the module's docs)."""

from __future__ import absolute_import, division, print_function

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import role_inputs

ROLES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "roles")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def _template(self, value):
        """The value as the role will see it, or raise when it cannot be known yet (it names a later fact)."""
        return self._templar.template(value)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self.validate_argument_spec(argument_spec=dict(
            roles=dict(type="list", elements="str"),
            warn_unknown=dict(type="bool", default=True),
        ))[1]
        roles = role_inputs.load_roles(ROLES_DIR)
        chosen = args["roles"] or sorted(roles)
        unknown_roles = sorted(set(chosen) - set(roles))
        if unknown_roles:
            result.update(failed=True, msg="roles has unknown role(s): %s" % ", ".join(unknown_roles))
            return result

        names = [name for name in task_vars if isinstance(name, str)]
        if args["warn_unknown"]:
            unknown = role_inputs.unknown_variables(names, roles)
            result["unknown"] = [name for name, _near in unknown]
            result["warnings"] = [role_inputs.unknown_warning(*item) for item in unknown]

        problems = []
        checked = {}
        # Values of no_log options (a registry password): kept out of every message below.
        secrets = set()
        for role in chosen:
            options = roles[role]["options"]
            defaults = roles[role]["defaults"]
            values = {}
            for name in options:
                if name not in task_vars:
                    continue
                try:
                    values[name] = self._template(task_vars[name])
                except AnsibleError:
                    continue  # refers to what a later role publishes; the role's own spec checks it then
            # Our defaults are checked by the unit tests; what the user set is checked here.
            given = dict((k, v) for k, v in values.items() if k not in defaults or task_vars[k] != defaults[k])
            spec = dict((k, v) for k, v in options.items() if k in given)
            validated = ArgumentSpecValidator(spec).validate(dict(given))
            problems.extend(validated.error_messages)
            secrets.update(validated._no_log_values)
            checked.update(values)
            if not validated.error_messages:
                checked.update(validated.validated_parameters)
        problems.extend(role_inputs.problems(checked))
        problems.extend(role_inputs.k8s_problems(checked, dict((r, roles[r]) for r in chosen)))
        problems = remove_values(problems, secrets)
        if problems:
            result.update(failed=True, msg=role_inputs.refusal(problems), problems=problems)
        else:
            result.update(checked=sorted(checked), msg="%d role variable(s) checked" % len(checked))
        return result
