"""The README's comparison with nvidia-ctk names every containerd case, and its counts are right."""

import os
import re

from . import containerd_cases as cases

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
TITLE = "## containerd: our module against `nvidia-ctk runtime configure`"


def section():
    with open(README) as handle:
        text = handle.read()
    start = text.index(TITLE)
    end = text.index("\n## ", start + len(TITLE))
    return text[start:end]


def rows():
    """{case name: row text} of the comparison table."""
    found = {}
    for line in section().splitlines():
        match = re.match(r"^\| `([a-z0-9.-]+)` \|", line)
        if match:
            assert match.group(1) not in found, "case %s listed twice" % match.group(1)
            found[match.group(1)] = line
    return found


def test_every_case_has_a_row_and_every_row_a_case():
    assert sorted(rows()) == sorted(cases.CASES)


def test_ported_cases_say_upstream_and_name_their_test():
    for name, line in rows().items():
        case = cases.CASES[name]
        # A ported case's nvidia-ctk column says what upstream's test expects ("upstream: ...").
        assert bool(re.search(r"\| upstream[ :(]", line)) == bool(case.upstream), name
        if case.upstream:
            assert case.upstream.startswith(cases.UPSTREAM) and ".go Test" in case.upstream, name
        # A ported case that differs says why in the case itself.
        if case.upstream and "**differs**" in line:
            assert case.differs, name


def test_the_counts_are_those_of_the_cases():
    table = rows()
    ported = [n for n, c in cases.CASES.items() if c.upstream]
    differs = [n for n, line in table.items() if "**differs**" in line]
    takeovers = [n for n in cases.CASES if n.startswith("takeover-")]
    summary = " ".join(section().split())
    expected = "%d cases; %d ported from nvidia-ctk 1.20.0's tests" % (len(cases.CASES), len(ported))
    assert expected in summary
    assert "%d where our outcome differs on purpose" % len(differs) in summary
    assert "(%d of them ported, whose case says why)" % len([n for n in differs if n in ported]) in summary
    assert "%d take-overs" % len(takeovers) in summary
    assert sorted(n for n in ported if cases.CASES[n].differs) == sorted(n for n in differs if n in ported)
