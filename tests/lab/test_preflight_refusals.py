"""site.yml stops unsupported nodes in preflight, before any change, with a clear message."""

import re

from .conftest import playbook

# Debian 11's os-release, as that release ships it: a real OS the collection does not support.
DEBIAN_11_OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\nVERSION_ID="11"\n'
    'VERSION="11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n'
    'HOME_URL="https://www.debian.org/"\n'
)
# What these tests are about is preflight: site.yml with only the preflight role's tasks
# (each role's tasks carry its name as a tag) and validate, so that the good node does
# not build the driver for nothing (the run report runs under any tag). validate stays so
# that the good node has its verdict in the report.
PREFLIGHT_ONLY = ("--tags", "preflight,validate,untagged")
SNAPSHOT = "find /etc /var/lib/dpkg /usr/lib/os-release -xdev -type f -print0 | sort -z | xargs -0 sha256sum"


def recap(output, host):
    match = re.search(r"^%s\s+: (.*)$" % re.escape(host), output, re.M)
    assert match, output
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1)))


def test_non_systemd_and_unsupported_os_stop_before_any_change(nodes, tmp_path):
    # A node whose PID 1 is not systemd: the image run with a plain command.
    plain = nodes.start("bookworm", command=("sleep", "infinity"), systemd=False)
    # A Debian 12 node that presents Debian 11's os-release: the only way to get an
    # unsupported release here (no other OS's packages are reachable); what preflight
    # reads is os-release, so the check under test is the real one.
    release = tmp_path / "os-release"
    release.write_text(DEBIAN_11_OS_RELEASE)
    old = nodes.start("bookworm", "--volume", "%s:/usr/lib/os-release:ro" % release)
    good = nodes.start("trixie")
    before = {n: nodes.exec(n, "sh", "-c", SNAPSHOT) for n in (plain, old)}

    run = playbook([plain, old, good], tmp_path, "playbooks/site.yml", *PREFLIGHT_ONLY)
    out = run.stdout + run.stderr

    assert run.returncode == 2, out
    assert "preflight refused %s" % plain in out
    assert "systemd is not the init system (PID 1 is sleep)" in out
    assert "preflight refused %s" % old in out
    assert "unsupported OS Debian GNU/Linux 11 (bullseye) (id debian, version 11)" in out
    assert "supported: debian 12/13, ubuntu 22.04/24.04" in out
    for node in (plain, old):
        assert recap(out, node)["failed"] == 1
        assert recap(out, node)["changed"] == 0
        assert nodes.exec(node, "sh", "-c", SNAPSHOT) == before[node], "node changed"
    # The supported node goes on; the run report names the two others as refused, with what preflight read.
    assert recap(out, good)["failed"] == 0
    assert re.search(r"^%s\s+debian 12 .* failed: preflight " % plain, out, re.M), out
    assert re.search(r"^%s\s+debian 11 .* failed: preflight " % old, out, re.M), out
    assert re.search(r"^%s\s+debian 13 .* no GPU " % good, out, re.M), out
    assert "Run report: 3 nodes: 1 no GPU, 2 failed: preflight" in out, out


def test_bad_role_variables_are_refused_by_the_argument_spec(nodes, tmp_path):
    node = nodes.start("trixie")
    run = playbook([node], tmp_path, "playbooks/site.yml", *PREFLIGHT_ONLY, "-e", "preflight_min_gpus=two",
                   "-e", '{"preflight_supported_os": [{"id": "debian"}]}')
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "Validation of arguments failed" in out
    assert "preflight_min_gpus" in out and "two" in out
    assert "major_versions" in out
    assert recap(out, node)["changed"] == 0


def test_a_supported_node_passes_and_fewer_gpus_than_required_stops(nodes, tmp_path):
    node = nodes.start("trixie")
    run = playbook([node], tmp_path, "playbooks/site.yml", *PREFLIGHT_ONLY)
    assert run.returncode == 0, run.stdout + run.stderr
    run = playbook([node], tmp_path, "playbooks/site.yml", *PREFLIGHT_ONLY, "-e", "preflight_min_gpus=1")
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "found 0 NVIDIA GPU(s) on the PCI bus, preflight_min_gpus is 1" in out
