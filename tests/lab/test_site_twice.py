"""playbooks/site.yml on three lab nodes (2x Debian 12, 1x Debian 13): the second run changes nothing."""

import re

from .conftest import playbook
from .test_preflight_refusals import recap


def test_site_converges_then_changes_nothing(nodes, tmp_path):
    hosts = [nodes.start("bookworm"), nodes.start("bookworm"), nodes.start("trixie")]
    first = playbook(hosts, tmp_path, "playbooks/site.yml")
    assert first.returncode == 0, first.stdout + first.stderr
    second = playbook(hosts, tmp_path, "playbooks/site.yml")
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    for host in hosts:
        stats = recap(out, host)
        assert stats["changed"] == 0 and stats["failed"] == 0, (host, stats)
    # Check mode with --diff reads the same nodes and reports the same, changing nothing.
    check = playbook(hosts, tmp_path, "playbooks/site.yml", "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert all(recap(check.stdout, h)["changed"] == 0 for h in hosts)
    # The run ends with the report: one line per node.
    tail = out[out.rindex("TASK [Print one line per GPU node]"):]
    for host in hosts:
        assert re.search(r"%s\s+debian 1[23] " % host, tail), tail
