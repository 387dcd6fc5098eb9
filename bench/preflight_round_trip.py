"""How much one preflight_facts call saves against the usual ways of reading a node.

On N lab nodes (podman containers from the lab images) it times, in one run and
with the same nodes, the median of REPEAT runs of:
  setup      - `ansible -m setup` (full fact gathering, what gather_facts costs)
  preflight  - one playbook task: gpunode.nvidia.preflight_facts
  per-fact   - the same information read with one command task per item
               (os-release, uname, PCI scan, modules, driver, Secure Boot, virt,
               headers, packages, services: what a role without the module does)
and prints the ratios. Times depend on the machine; the ratios are the result.
Run as root after `lab/lab.sh build`:  sudo .venv/bin/python bench/preflight_round_trip.py
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NODES = int(os.environ.get("BENCH_NODES", "3"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
IMAGE = os.environ.get("LAB_IMAGE_PREFIX", "localhost/gpunode-lab") + "-bookworm"

PER_FACT = [
    "cat /etc/os-release",
    "uname -rm",
    "cat /proc/1/comm",
    "sh -c 'grep -l 0x10de /sys/bus/pci/devices/*/vendor || true'",
    "sh -c 'cat /proc/modules 2>/dev/null || ls /sys/module'",
    "sh -c 'cat /proc/driver/nvidia/version 2>/dev/null || true'",
    "sh -c 'ls /sys/firmware/efi/efivars 2>/dev/null | grep SecureBoot || true'",
    "sh -c 'systemd-detect-virt --container || true'",
    "sh -c 'apt-cache policy linux-headers-$(uname -r)'",
    "sh -c 'dpkg-query -W libnvidia-ml1 nvidia-kernel-dkms || true'",
    "systemctl show --property=ActiveState nvidia-persistenced",
]


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def timed(argv, env):
    start = time.monotonic()
    subprocess.run(argv, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - start


def main():
    names = ["bench-%s" % uuid.uuid4().hex[:8] for unused in range(NODES)]
    work = tempfile.mkdtemp(prefix="gpunode-bench-")
    try:
        for name in names:
            sh("podman", "run", "-d", "--name", name, "--systemd=always", "--privileged", IMAGE, "/lib/systemd/systemd")
        inventory = os.path.join(work, "inventory.yml")
        with open(inventory, "w") as handle:
            handle.write("gpu_nodes:\n  vars:\n    ansible_connection: containers.podman.podman\n"
                         "    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n")
            handle.writelines("    %s:\n" % n for n in names)
        per_fact = os.path.join(work, "per_fact.yml")
        with open(per_fact, "w") as handle:
            handle.write("- hosts: gpu_nodes\n  gather_facts: false\n  tasks:\n")
            for i, cmd in enumerate(PER_FACT):
                handle.write("    - name: read %d\n      ansible.builtin.command: %s\n      changed_when: false\n"
                             % (i, json.dumps(cmd)))
        module = os.path.join(work, "preflight.yml")
        with open(module, "w") as handle:
            handle.write("- hosts: gpu_nodes\n  gather_facts: false\n  tasks:\n"
                         "    - name: read the node\n      gpunode.nvidia.preflight_facts:\n"
                         "        packages: [libnvidia-ml1, nvidia-kernel-dkms]\n"
                         "        services: [nvidia-persistenced]\n")
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
        cases = {
            "setup": ["ansible", "-i", inventory, "gpu_nodes", "-m", "ansible.builtin.setup"],
            "preflight": ["ansible-playbook", "-i", inventory, module],
            "per-fact": ["ansible-playbook", "-i", inventory, per_fact],
        }
        for argv in cases.values():  # warm-up: caches, bytecode
            timed(argv, env)
        results = {k: statistics.median(timed(v, env) for unused in range(REPEAT)) for k, v in cases.items()}
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], capture_output=True, check=False)
    report = {
        "nodes": NODES,
        "repeat": REPEAT,
        "median_seconds": {k: round(v, 2) for k, v in results.items()},
        "ratio_setup_over_preflight": round(results["setup"] / results["preflight"], 2),
        "ratio_per_fact_over_preflight": round(results["per-fact"] / results["preflight"], 2),
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
