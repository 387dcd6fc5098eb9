"""Every role's defaults and meta/argument_specs.yml agree, and variables carry the role's prefix."""

import os

import pytest
import yaml

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
