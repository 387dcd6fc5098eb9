"""Every role's defaults and meta/argument_specs.yml agree, and variables carry the role's prefix."""

import os

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ..conftest import ROOT

ROLES = sorted(
    r for r in os.listdir(os.path.join(ROOT, "roles"))
    if os.path.isfile(os.path.join(ROOT, "roles", r, "meta", "argument_specs.yml"))
)


def load(*parts):
    path = os.path.join(ROOT, *parts)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def test_there_are_roles_to_check():
    assert "preflight" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_defaults_match_the_argument_spec(role):
    defaults = load("roles", role, "defaults", "main.yml")
    spec = load("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(k for k, v in spec.items() if "default" in v or not v.get("required"))
    for name, value in defaults.items():
        assert spec[name].get("default") == value, name


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix(role):
    spec = load("roles", role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert all(name.startswith(role + "_") for name in spec), sorted(spec)
    internal = load("roles", role, "vars", "main.yml")
    assert all(name.startswith("_" + role + "_") for name in internal), sorted(internal)


def test_driver_bad_choices_are_named_by_the_spec():
    # The driver planner leaves choices to the argument spec, which Ansible checks when the role starts.
    spec = load("roles", "driver", "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load("roles", "driver", "defaults", "main.yml")
    errors = ArgumentSpecValidator(spec).validate(dict(defaults, driver_reboot="sometimes", driver_source="distro")).errors
    assert [str(e) for e in errors] == ["value of driver_reboot must be one of: never, if_needed, always, got: sometimes"]
    errors = ArgumentSpecValidator(spec).validate(dict(defaults, driver_source="runfile")).errors
    assert str(errors[0]).startswith("value of driver_source must be one of")
