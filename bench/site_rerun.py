"""What a converged re-run of site.yml costs, against a facts-only play on the same nodes.

A re-check of a converged fleet is the most frequent run. In one run, on nodes that
site.yml has already converged, this times alternating pairs of:
  site   - the playbook (default playbooks/site.yml of the checkout): must change nothing
  facts  - one play on the same hosts with gather_facts: true and no tasks
and prints, from the medians, the wall-time ratio site/facts, the controller CPU ratio
(user + system CPU of ansible-playbook and all its children, from getrusage(RUSAGE_CHILDREN)
deltas around each run), controller CPU-seconds per node, and, from the last site run,
how many tasks each role executed and skipped on each node (ansible.posix.json callback,
whose task names in a role read "<role> : <task>"; tasks outside roles count as "(play)").
Every run uses that callback, so both sides pay for it. Times depend on the machine and
its load; the ratios are the result.

Run as root (the lab's nodes are podman containers), with the checkout whose playbook to
measure (its ansible.cfg, collection link and roles are used, so another checkout works):
  .venv/bin/python bench/site_rerun.py --inventory "$(lab/lab.sh inventory)" [--checkout DIR] [--pairs 3]
"""

import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", default=ROOT, help="checkout whose playbook runs (default: this one)")
    parser.add_argument("--playbook", default="playbooks/site.yml", help="playbook, relative to the checkout")
    parser.add_argument("--inventory", required=True, help="inventory of converged nodes")
    parser.add_argument("--hosts", default="gpu_nodes", help="the group the playbook runs on")
    parser.add_argument("--pairs", type=int, default=3, help="alternating site/facts pairs (default 3)")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    return args


def environment(checkout):
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(checkout, "ansible.cfg"),
                ANSIBLE_COLLECTIONS_PATH=os.path.join(checkout, ".cache", "collections"),
                ANSIBLE_ROLES_PATH=os.path.join(checkout, "roles"), ANSIBLE_HOME=os.path.join(checkout, ".ansible"),
                ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")


def timed(argv, cwd, env):
    """Runs ansible-playbook; returns (wall seconds, controller CPU seconds, its JSON report)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit("%s failed (exit %d):\n%s%s" % (" ".join(argv), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # site.yml's run report prints its text on stdout before the callback's JSON: read from the
    # JSON's first line on.
    text = proc.stdout
    start = 0 if text.startswith("{") else text.find("\n{\n") + 1
    return wall, cpu, json.loads(text[start:])


def role_of(task_name):
    role, sep, unused = task_name.partition(" : ")
    return role.rsplit(".", 1)[-1] if sep else "(play)"


def task_counts(report, nodes):
    """{node: {role: {"executed": n, "skipped": n}}} from an ansible.posix.json report."""
    counts = {n: collections.defaultdict(lambda: {"executed": 0, "skipped": 0}) for n in nodes}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if host in counts:
                    counts[host][role_of(task["task"]["name"])]["skipped" if result.get("skipped") else "executed"] += 1
    return {n: dict(sorted(roles.items())) for n, roles in counts.items()}


def main():
    args = arguments()
    checkout = os.path.abspath(args.checkout)
    inventory = os.path.abspath(args.inventory)
    env = environment(checkout)
    work = tempfile.mkdtemp(prefix="gpunode-bench-")
    facts_play = os.path.join(work, "facts.yml")
    with open(facts_play, "w") as handle:
        handle.write("- name: Facts only\n  hosts: %s\n  gather_facts: true\n  tasks: []\n" % args.hosts)
    cases = {
        "site": ["ansible-playbook", "-i", inventory, "-e", "gpunode_hosts=" + args.hosts, args.playbook],
        "facts": ["ansible-playbook", "-i", inventory, facts_play],
    }
    warm = timed(cases["facts"], checkout, env)[2]  # warm-up: bytecode, podman
    nodes = sorted(warm["stats"])
    runs = {k: [] for k in cases}
    for _pair in range(args.pairs):
        for name, argv in cases.items():
            wall, cpu, report = timed(argv, checkout, env)
            runs[name].append((wall, cpu))
            if name == "site":
                changed = {n: report["stats"][n]["changed"] for n in nodes}
                if any(changed.values()):
                    sys.exit("not a converged re-run (changed per node: %s): run the playbook first" % changed)
                last_site = report
    os.remove(facts_play)
    os.rmdir(work)
    wall = {k: statistics.median(w for w, unused in v) for k, v in runs.items()}
    cpu = {k: statistics.median(c for unused, c in v) for k, v in runs.items()}
    result = {
        "checkout": checkout,
        "playbook": args.playbook,
        "nodes": len(nodes),
        "pairs": args.pairs,
        "runs_seconds": {k: [{"wall": round(w, 2), "cpu": round(c, 2)} for w, c in v] for k, v in runs.items()},
        "median_wall_seconds": {k: round(v, 2) for k, v in wall.items()},
        "median_controller_cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "ratio_wall_site_over_facts": round(wall["site"] / wall["facts"], 2),
        "ratio_cpu_site_over_facts": round(cpu["site"] / cpu["facts"], 2),
        "controller_cpu_seconds_per_node": {k: round(v / len(nodes), 2) for k, v in cpu.items()},
        "site_tasks_per_node": task_counts(last_site, nodes),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
