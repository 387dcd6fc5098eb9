"""scripts/setup.sh's apt path waits for apt's locks instead of failing with exit 100.

On a lab node (so the machine's own apt is left alone), a background process holds the
dpkg frontend, dpkg and apt lists locks the way apt does (fcntl locks), as apt-daily does
on a fresh VM, for 20 s (4 times apt-get's own 5 s wait); meanwhile `apt_get update` from scripts/lib.sh (what
setup.sh calls) runs a real apt-get, says whose lock it waits for, and succeeds after
the release."""

import os
import re

from .conftest import ROOT, podman

HOLD_SECONDS = 20
HOLDER = """
import fcntl, os, sys, time
locks = [open(p, "a") for p in ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")]
for f in locks:
    fcntl.lockf(f, fcntl.LOCK_EX)
open("/var/tmp/gpunode-held", "w").write(str(os.getpid()))
time.sleep(float(sys.argv[1]))
for f in locks:
    fcntl.lockf(f, fcntl.LOCK_UN)
open("/var/tmp/gpunode-released", "w").write(repr(time.time()))
"""
# The marks go to /var/tmp: /tmp may get its tmpfs mounted over it while the node still boots.
SCRIPT = """
set -u
systemctl is-system-running --wait >/dev/null 2>&1
python3 -c '%s' %d &
for i in $(seq 300); do [ -s /var/tmp/gpunode-held ] && break; sleep 0.1; done
[ -s /var/tmp/gpunode-held ] || { echo "the lock holder did not start"; exit 1; }
echo "holder $(cat /var/tmp/gpunode-held)"
apt-get -o DPkg::Lock::Timeout=5 update >/dev/null 2>&1
echo "plain apt-get update: $?"
. /gpunode/scripts/lib.sh
apt_get update -qq
echo "apt_get update: $? at $(python3 -c 'import time; print(repr(time.time()))')"
echo "released at $(cat /var/tmp/gpunode-released 2>/dev/null || echo never)"
"""


def test_apt_get_waits_for_the_locks_then_succeeds(nodes):
    # lib.sh reads the locks with the collection's own reader (plugins/module_utils/pkg_locks.py).
    node = nodes.start("bookworm", "--volume", "%s:/gpunode/scripts:ro" % os.path.join(ROOT, "scripts"),
                       "--volume", "%s:/gpunode/plugins:ro" % os.path.join(ROOT, "plugins"))
    run = podman("exec", node, "bash", "-c", SCRIPT % (HOLDER, HOLD_SECONDS), check=False)
    out = run.stdout + run.stderr
    holder = re.search(r"^holder (\d+)$", out, re.M).group(1)
    # The holder is real: apt-get on its own gives up at once (exit 100), as on that fresh VM.
    assert "plain apt-get update: 100" in out, out
    assert "waiting for the apt lock held by PID %s (python3) on /var/lib/dpkg/lock-frontend" % holder in out, out
    done = re.search(r"^apt_get update: (\d+) at ([\d.]+)$", out, re.M)
    released = re.search(r"^released at ([\d.]+)$", out, re.M)
    assert done and released, out
    assert done.group(1) == "0", out
    assert float(done.group(2)) >= float(released.group(1)), out  # it waited for the release
