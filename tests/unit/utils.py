"""Helpers shared by the module unit tests."""

import contextlib
import json
from unittest import mock

import pytest
from ansible.module_utils import basic

try:  # ansible-core >= 2.19
    from ansible.module_utils import _internal as _module_utils_internal
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # 2.16 to 2.18 (the controller matrix): arguments are read from basic._ANSIBLE_ARGS
    _module_utils_internal = None

    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()):
            yield


def run_module(main, args, capsys):
    """Run a module's main() with ``args``; return (failed, result dict).

    A module runs in a process of its own, never in the controller's. Once any
    test has imported controller code (the templar, say), ansible-core routes
    module warnings to the controller's display instead of the result; the
    patch keeps every module run here as it is on a node.
    """
    as_node = mock.patch.object(_module_utils_internal, "is_controller", False) if _module_utils_internal else contextlib.nullcontext()
    with patch_module_args(args), as_node:
        with pytest.raises(SystemExit) as exc:
            main()
    out = capsys.readouterr().out
    result = json.loads(out)
    return exc.value.code != 0, result


def warnings_of(result):
    """A module result's warnings as text: 2.19 and later return them as events, 2.16 to 2.18 as strings."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings") or []]


class FakeRun(object):
    """Test double for run_command: canned (rc, stdout, stderr) per argv[0].

    The canned outputs are what the real commands printed on lab nodes
    (tests/unit/fixtures/commands/); anything not listed answers "not found".
    """

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        answer = self.answers.get(argv[0])
        if callable(answer):
            return answer(argv)
        if answer is None:
            return 127, "", "%s: not found" % argv[0]
        return answer
