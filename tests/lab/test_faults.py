"""Faults of a maintenance window, injected into a first converge of site.yml on two fresh Debian 12 lab
nodes (real apt, dpkg and DKMS builds), then survived: the re-runs converge, the last run changes
nothing, dpkg is clean, the DKMS module is installed, the user's containerd settings are in effect.

  python -m pytest -q tests/lab/test_faults.py   (as root, with the lab images: scripts/test.sh)

The faults, in the order injected (A and B are the two nodes):
  run 1  B: dpkg, apt-get and the DKMS build killed while the driver's module compiles (a power loss
            under the package manager); A: the controller killed (SIGKILL of ansible-playbook) in the
            driver's install step, its apt left running on the node
  run 2  the controller killed in the container toolkit's install step, while apt installs it
  run 3  B: dpkg killed in containerd's install step (in its post-install script); the controller
            killed in the same step
  run 4  A: the node restarted (podman restart, no grace) while containerd's configuration is written;
            B: the apt and dpkg locks held past preflight_package_lock_timeout by another process
  run 5  converges; run 6 changes nothing.
Each re-run must get past the step its fault hit; what was repaired is checked in its output.
"""

import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from .conftest import FAULT_SUMMARY, ROOT, lab, podman
from .test_apt_lock import HOLDER
from .test_preflight_refusals import recap

DRIVER_INSTALL = "TASK [gpunode.nvidia.driver : Install the driver, its kernel headers and tools]"
TOOLKIT_INSTALL = "TASK [gpunode.nvidia.container_toolkit : Install the four packages at container_toolkit_version]"
CONTAINERD_INSTALL = "TASK [gpunode.nvidia.containerd : Install containerd from the distribution]"
CONTAINERD_CONFIG = "TASK [gpunode.nvidia.containerd : Register the runtime in containerd's configuration]"
REPAIR_TASK = "TASK [gpunode.nvidia.preflight : Wait for the package manager's locks and repair what a killed run left half-way]"

# The user's own settings in containerd's config.toml, there before containerd is installed.
USER_CONFIG = """version = 2
oom_score = -999

[plugins."io.containerd.grpc.v1.cri"]
  max_concurrent_downloads = 7
"""

# Watches inside the node (20 ms polls, quicker than any podman exec from outside): as soon as
# $PATTERN runs, it does $ACTION and leaves a mark saying when. Both come in the environment, so
# the watcher's own command line cannot match the pattern or be hit by the action.
WATCHER = """
for i in $(seq 45000); do
  if pgrep -f "$PATTERN" >/dev/null; then
    eval "$ACTION"
    date +%s.%N >"$MARK"
    exit 0
  fi
  sleep 0.02
done
"""
# A power loss under the package manager: every process of the package run dies at once.
POWER_LOSS = 'for name in apt-get dpkg dkms make cc1 gcc; do pkill -9 -x "$name"; done; pkill -9 -f postinst'


class Playbook:
    """site.yml running in the background, its output in a file, killable like a lost controller."""

    def __init__(self, log, inventories, *args):
        self.log = log
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        command = ["ansible-playbook", "playbooks/site.yml"] + [a for i in inventories for a in ("-i", str(i))] + list(args)
        self.handle = open(log, "w")
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        with open(self.log) as handle:
            return handle.read()

    def wait_for(self, text, timeout=900):
        """Wait until the output holds ``text``; False when the run ended or time ran out first."""
        end = time.time() + timeout
        while time.time() < end:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.2)
        return False

    def kill(self):
        """SIGKILL of ansible-playbook and its workers, as when the operator's session dies."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.handle.close()

    def finish(self, timeout=1500):
        self.proc.wait(timeout=timeout)
        self.handle.close()
        return self.proc.returncode, self.output()


def until(check, timeout, step=0.3):
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return True
        time.sleep(step)
    return False


def arm(node, mark, pattern, action=":"):
    path = "/var/tmp/gpunode-fault-" + mark
    podman("exec", node, "rm", "-f", path)
    podman("exec", "-d", "-e", "PATTERN=" + pattern, "-e", "ACTION=" + action, "-e", "MARK=" + path, node, "bash", "-c", WATCHER)


def fired(node, mark):
    return podman("exec", node, "test", "-s", "/var/tmp/gpunode-fault-" + mark, check=False).returncode == 0


def apt_running(node):
    return podman("exec", node, "pgrep", "-x", "dpkg|apt-get", check=False).returncode == 0


def section(out, host, task):
    """What the run printed for ``host`` under ``task`` (the result line and its message)."""
    start = out.find(task)
    if start < 0:
        return ""
    block = out[start:out.find("\nTASK [", start + 1) if out.find("\nTASK [", start + 1) > 0 else len(out)]
    lines = [line for line in block.splitlines() if "[%s]" % host in line]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fault_lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("faults")
    env = {"LAB_NAME_PREFIX": "lab-fault-%s" % uuid.uuid4().hex[:6], "LAB_STATE": str(state), "LAB_NODES": "bookworm:2"}
    up = lab("up", env=env, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    inventory = lab("inventory", env=env).stdout.strip()
    node_a, node_b = ["%s-bookworm-%d" % (env["LAB_NAME_PREFIX"], i) for i in (1, 2)]
    yield {"state": state, "inventory": inventory, "a": node_a, "b": node_b}
    lab("down", env=env, check=False)


@pytest.fixture(scope="module")
def campaign(fault_lab):
    """Every fault injected and every re-run made, once; the tests below judge the record."""
    lab_dir, inventory = fault_lab["state"], fault_lab["inventory"]
    node_a, node_b = fault_lab["a"], fault_lab["b"]
    faults, runs = [], {}
    for node in (node_a, node_b):
        podman("exec", node, "mkdir", "-p", "/etc/containerd")
        podman("exec", node, "bash", "-c", "cat >/etc/containerd/config.toml <<'EOF'\n%sEOF" % USER_CONFIG)

    def run(n, *extra):
        return Playbook(str(lab_dir / ("run%d.log" % n)), [inventory] + list(extra))

    # scripts/test.sh runs this test beside the controller matrix: A's orphaned DKMS build shares
    # the two cores with other builds, so runs 1 to 3 wait up to 20 minutes for its lock, not 10.
    patient = lab_dir / "patient.yml"
    patient.write_text("all:\n  vars:\n    preflight_package_lock_timeout: 1200\n")

    # Run 1: the DKMS build on B dies with its dpkg; A's controller dies in the same step.
    first = run(1, patient)
    arm(node_b, "dkms", "/cc1 ", POWER_LOSS)
    arm(node_a, "dkms", "/cc1 ")
    seen = first.wait_for(DRIVER_INSTALL) and until(lambda: fired(node_a, "dkms"), 900)
    b_killed = until(lambda: fired(node_b, "dkms"), 300)
    first.kill()
    faults.append({"fault": "node %s: dpkg and the DKMS build killed while the module compiled" % node_b, "injected": b_killed})
    faults.append({"fault": "controller killed in the driver's install step, %s's apt left running" % node_a,
                   "injected": seen and apt_running(node_a)})
    runs[1] = first.output()

    # Run 2: through the repair and the driver, then killed while apt installs the toolkit.
    second = run(2, patient)
    seen = second.wait_for(TOOLKIT_INSTALL, 1500)
    if seen:
        arm(node_a, "toolkit", "apt-get .*nvidia-container-toolkit")
        seen = until(lambda: fired(node_a, "toolkit"), 300, 0.1)
    second.kill()
    faults.append({"fault": "controller killed in the container toolkit's install step", "injected": seen})
    runs[2] = second.output()

    # Run 3: B's dpkg dies in containerd's post-install script; the controller in the same step.
    third = run(3, patient)
    arm(node_b, "containerd", "info/containerd[.]postinst", POWER_LOSS)
    seen = third.wait_for(CONTAINERD_INSTALL, 900)
    b_killed = seen and until(lambda: fired(node_b, "containerd"), 300, 0.1)
    third.kill()
    faults.append({"fault": "node %s: dpkg killed in containerd's install step" % node_b, "injected": b_killed})
    faults.append({"fault": "controller killed in containerd's install step", "injected": seen})
    runs[3] = third.output()

    # Run 4: B's locks held past the timeout by another process; A restarted while containerd is configured.
    podman("exec", node_b, "rm", "-f", "/var/tmp/gpunode-held", "/var/tmp/gpunode-released")
    podman("exec", "-d", node_b, "python3", "-c", HOLDER, "240")
    assert until(lambda: podman("exec", node_b, "test", "-s", "/var/tmp/gpunode-held", check=False).returncode == 0, 30)
    holder = podman("exec", node_b, "cat", "/var/tmp/gpunode-held").stdout.strip()
    extra = lab_dir / "lock-timeout.yml"
    extra.write_text("all:\n  hosts:\n    %s:\n      preflight_package_lock_timeout: 20\n" % node_b)
    fourth = run(4, extra)
    seen = fourth.wait_for(CONTAINERD_CONFIG, 900)
    if seen:
        podman("restart", "-t", "0", node_a)
    rc4, runs[4] = fourth.finish()
    faults.append({"fault": "node %s restarted while containerd's configuration was written" % node_a, "injected": seen, "rc": rc4})
    faults.append({"fault": "node %s: the apt and dpkg locks held past preflight_package_lock_timeout" % node_b,
                   "injected": True, "holder": holder})
    podman("exec", node_b, "pkill", "-9", "-f", "import fcntl", check=False)
    podman("exec", node_a, "systemctl", "is-system-running", "--wait", check=False)

    results = {}
    for n in (5, 6):
        results[n] = run(n).finish()
        runs[n] = results[n][1]
    return {"faults": faults, "runs": runs, "results": results, "a": node_a, "b": node_b, "holder": holder}


def node_problems(node):
    """What does not hold on a node after the campaign: dpkg clean, the module built, containerd running
    with the user's settings and the nvidia runtime. [] when all holds."""
    out = podman("exec", node, "bash", "-c",
                 "dpkg --audit; echo audit-end; ls /var/lib/dpkg/updates | grep -c '^[0-9][0-9]*$'; dkms status; "
                 "systemctl is-active containerd; containerd config dump", check=False).stdout
    audit, rest = out.split("audit-end", 1) if "audit-end" in out else (out, "")
    checks = {
        "dpkg --audit lists packages": audit.strip() == "",
        "dpkg's journal holds updates": re.search(r"^0$", rest, re.M) is not None,
        "no installed DKMS module": re.search(r"^nvidia-current/535\.\S+, 6\.\S+, x86_64: installed$", rest, re.M) is not None,
        "containerd not active": re.search(r"^active$", rest, re.M) is not None,
        "oom_score = -999 lost": re.search(r"^oom_score = -999$", rest, re.M) is not None,
        "max_concurrent_downloads = 7 lost": re.search(r"^\s+max_concurrent_downloads = 7$", rest, re.M) is not None,
        "no nvidia runtime": re.search(r"runtimes\.nvidia\]", rest) is not None,
    }
    return ["%s: %s" % (node, name) for name, ok in checks.items() if not ok] + ([out] if not all(checks.values()) else [])


def converged(campaign):
    (rc5, _out5), (rc6, out6) = campaign["results"][5], campaign["results"][6]
    nodes = (campaign["a"], campaign["b"])
    return rc5 == 0 and rc6 == 0 and all(recap(out6, n)["changed"] == 0 for n in nodes) and not any(node_problems(n) for n in nodes)


def test_every_fault_was_injected(campaign):
    missing = [f["fault"] for f in campaign["faults"] if not f["injected"]]
    assert not missing, (missing, campaign["runs"])


def test_the_re_runs_repaired_what_the_faults_left(campaign):
    runs, node_b = campaign["runs"], campaign["b"]
    # B's interrupted DKMS build: repaired by run 2 (killed before its report: the module's warning says it).
    assert "changed: [%s]" % node_b in section(runs[2], node_b, REPAIR_TASK), runs[2]
    assert re.search(r"the package manager was left half-way \(dpkg was interrupted;[^)]*nvidia-kernel-dkms[^)]*\); repaired with"
                     r" dpkg --force-confdef --force-confold --configure -a", " ".join(runs[2].split())), runs[2]
    # Every run after a kill got past the step the kill hit.
    assert TOOLKIT_INSTALL in runs[2] and CONTAINERD_INSTALL in runs[3], (runs[2], runs[3])
    # The lock: B stopped at preflight, naming the holder, and changed nothing.
    lock_block = section(runs[4], node_b, REPAIR_TASK)
    assert "still held after" in lock_block and "PID %s (python3)" % campaign["holder"] in lock_block, runs[4]
    assert recap(runs[4], node_b)["changed"] == 0, runs[4]
    # B's dpkg killed in containerd's post-install script: repaired by run 5.
    assert re.search(r"%s: package manager: repaired dpkg was interrupted;.* (unpacked|half-configured): [^;]*\bcontainerd\b"
                     % re.escape(node_b), runs[5]), runs[5]


def test_the_fleet_converges_and_then_changes_nothing(campaign):
    rc5, out5 = campaign["results"][5]
    rc6, out6 = campaign["results"][6]
    assert rc5 == 0, out5
    assert rc6 == 0, out6
    for node in (campaign["a"], campaign["b"]):
        assert recap(out6, node)["changed"] == 0 and recap(out6, node)["failed"] == 0, out6


@pytest.mark.parametrize("which", ["a", "b"])
def test_nothing_is_half_installed_and_the_user_settings_hold(campaign, which):
    assert node_problems(campaign[which]) == []


def test_summary(campaign):
    faults = campaign["faults"]
    injected = [f for f in faults if f["injected"]]
    survived = injected if converged(campaign) else []
    lines = ["faults injected: %d, survived: %d" % (len(injected), len(survived))]
    lines += ["  %s: %s" % (f["fault"], "survived" if f in survived else ("NOT survived" if f["injected"] else "not injected")) for f in faults]
    FAULT_SUMMARY.extend(lines)
    assert len(survived) == len(faults) == 7, lines
