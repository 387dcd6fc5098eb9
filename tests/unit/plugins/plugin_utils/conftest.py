"""Preflight facts of the nodes the driver planner tests plan for."""

import pytest

from ... import hosts
from ...driver_data import gather, lab_facts
from ...utils import FakeRun


@pytest.fixture
def bookworm(tmp_path):
    return lab_facts("12", tmp_path)


@pytest.fixture
def trixie(tmp_path):
    return lab_facts("13", tmp_path)


@pytest.fixture
def hgx(tmp_path):
    run = FakeRun({"apt-cache": (0, "  Candidate: 6.8.0-87.88\n", "")})
    return gather(hosts.hgx_h100, tmp_path, kernel="6.8.0-87-generic", run=run)


@pytest.fixture
def rocky_sb(tmp_path):
    return gather(hosts.workstation_nouveau, tmp_path)
