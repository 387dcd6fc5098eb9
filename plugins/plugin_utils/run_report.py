# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run report of site.yml: one entry per host of the run, a tally, failures grouped by reason.

Built on the controller from what each host published (its gpunode_<role> facts,
docs/contract.md) and, for a host that failed a stage, what site.yml's rescue
recorded (gpunode_run_failure). Pure functions, so every line is unit-tested; the
action plugin gpunode.nvidia.run_report reads hostvars, calls these and writes the
JSON and Markdown files.
"""

from __future__ import absolute_import, division, print_function

import re

# The stages of site.yml's GPU play, in order, with the fact each publishes.
STACK = (("preflight", "gpunode_preflight"), ("driver", "gpunode_driver"), ("container_toolkit", "gpunode_container_toolkit"),
         ("containerd", "gpunode_containerd"), ("validate", "gpunode_validate"))
STAGE_NAMES = tuple(name for name, _fact in STACK)
FACTS = tuple(fact for _name, fact in STACK)
# Also read for the report: how the rollout role cordoned and drained the node (not a stage of its own).
READ_FACTS = FACTS + ("gpunode_rollout",)
STATE_TEXT = {"ready": "ready", "no_gpu": "no GPU", "failed": "failed", "not_validated": "not validated",
              "skipped": "validation skipped", "unreachable": "unreachable", "not_run": "not run"}
# A reason is one line; what a module says after its first sentence (how to fix it) is printed once per group.
REASON_MAX = 200
_SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z(])")


def failure_record(failed_task, failed_result, facts):
    """What site.yml's rescue keeps of a failure: the stage, the task and the message.

    ``failed_task``/``failed_result`` are Ansible's ansible_failed_task/ansible_failed_result;
    ``facts`` maps the gpunode_<role> fact names to what the host published. The stage is the
    role tag the failed task carries (preflight for a refused node); without one (an
    argument-spec check, a tag of always), the first stage whose fact the host has not published.
    """
    task = failed_task or {}
    result = failed_result or {}
    tags = task.get("tags") or []
    preflight = (facts or {}).get("gpunode_preflight") or {}
    # A refused node goes no further than preflight, whose refusal is tagged always.
    # The rollout role's tasks (a drain the stack roles asked for) carry its tag: that stage is the drain.
    stage = "preflight" if preflight.get("problems") else ("drain" if "rollout" in tags else None)
    stage = stage or next((name for name in STAGE_NAMES if name in tags), None)
    if stage is None:
        stage = next((name for name, fact in STACK if not isinstance((facts or {}).get(fact), dict)), "validate")
    if stage == "preflight" and preflight.get("problems"):
        message = "; ".join(preflight["problems"])
    elif stage == "validate" and isinstance((facts or {}).get("gpunode_validate"), dict):
        message = "; ".join("%s: %s" % (s["stage"], s.get("reason") or "failed")
                            for s in facts["gpunode_validate"].get("stages") or [] if s.get("status") == "fail")
    else:
        message = result.get("msg") or result.get("stderr") or result.get("module_stderr") or "failed"
    return {"stage": stage, "task": task.get("name") or "", "message": str(message).strip()}


def split_reason(message, host=None):
    """(reason, fix): the first sentence (the host's name generalised, so that nodes group), and the rest."""
    text = " ".join(str(message or "").split())
    if host:
        text = text.replace(str(host), "<node>")
    parts = _SENTENCE_END.split(text, 1)
    reason, fix = parts[0], (parts[1] if len(parts) > 1 else "")
    if len(reason) > REASON_MAX:
        reason, fix = reason[:REASON_MAX - 3].rstrip() + "...", text
    return reason, fix


def _version_of(fact, key="version"):
    return (fact or {}).get(key) or None


def _toolkit(fact):
    if not fact:
        return None
    if fact.get("installed"):
        binary = fact.get("runtime_binary") or {}
        missing = isinstance(binary, dict) and binary.get("exists") is False
        return fact.get("version") + (" (runtime binary missing)" if missing else "")
    return "not installed (want %s)" % fact.get("version")


def _containerd(fact, check_mode):
    """Version and runtime; a unit not active when read is stopped (check mode) or was stopped (the run started it)."""
    if not fact:
        return None
    runtime = fact.get("runtime") or {}
    text = "%s (%s" % (fact.get("version") or "?", runtime.get("name") or "no runtime")
    if runtime.get("binary_exists") is False:
        text += ", no binary"
    if fact.get("active") not in (None, "active"):
        text += ", stopped" if check_mode else ", was stopped"
    return text + ")"


def _gpus(preflight, validate):
    """'NVML/PCI' GPU counts: what the driver sees against what is on the bus."""
    pci = ((preflight or {}).get("gpus") or {}).get("count")
    if pci is None:
        return None
    stages = dict((s.get("stage"), s) for s in (validate or {}).get("stages") or [])
    nvml = ((stages.get("driver") or {}).get("details") or {}).get("gpu_count")
    return "%s/%s" % ("-" if nvml is None else nvml, pci)


def _changed(facts):
    return [name for name, fact in STACK if isinstance(facts.get(fact), dict) and facts[fact].get("changed") is True]


def _cordon(rollout, state):
    """What the run did to the node in Kubernetes (None when it did not drain it)."""
    rollout = rollout or {}
    change = rollout.get("change")
    if not change:
        return None
    if not rollout.get("drained"):
        return "would drain it before its %s changes" % change
    if rollout.get("cordoned_before"):
        return "drained before its %s changed; it was cordoned before the run and stays cordoned" % change
    if rollout.get("uncordoned"):
        return "drained before its %s changed, uncordoned after validate passed" % change
    return "drained before its %s changed; left cordoned (%s): uncordon it when it is fixed" % (
        change, STATE_TEXT.get(state, state) if state != "ready" else "not validated in this run")


def node_entry(host, facts, failure=None, reached=True, check_mode=False):
    """The report's entry for one host; ``facts``: its gpunode_* facts (and nothing else is read)."""
    facts = dict((k, v) for k, v in (facts or {}).items() if isinstance(v, dict))
    preflight = facts.get("gpunode_preflight") or {}
    summary = preflight.get("summary") or {}
    validate = facts.get("gpunode_validate")
    driver = facts.get("gpunode_driver")
    if failure:
        state = "failed"
    elif validate:
        state = {"pass": "ready", "no_gpu": "no_gpu", "skip": "skipped", "fail": "failed"}.get(validate.get("result"), "failed")
    elif facts:
        state = "not_validated"
    else:
        state = "unreachable" if reached else "not_run"
    stages = dict((s.get("stage"), s.get("status")) for s in (validate or {}).get("stages") or [])
    return {
        "host": host,
        "state": state,
        "failed_stage": (failure or {}).get("stage") or ("validate" if state == "failed" else None),
        "failure": failure or None,
        "os": summary.get("os"),
        "arch": summary.get("arch"),
        "gpus": _gpus(preflight, validate),
        "driver": _version_of(driver) or (summary.get("driver") if summary.get("driver") not in (None, "-") else None),
        "driver_reboot": (driver or {}).get("reboot"),
        "toolkit": _toolkit(facts.get("gpunode_container_toolkit")),
        "containerd": _containerd(facts.get("gpunode_containerd"), check_mode),
        "validate": stages,
        "changed": _changed(facts),
        "package_manager": (preflight.get("package_repair") or {}).get("line") or None,
        "kubernetes": _cordon(facts.get("gpunode_rollout"), state),
    }


def _validate_failures(validate):
    """(stage, message) for each validate stage that failed, for a node whose validation failed."""
    return [("validate: " + s["stage"], s.get("reason") or "failed") for s in (validate or {}).get("stages") or []
            if s.get("status") == "fail"]


def tally(entries):
    """'6 nodes: 4 ready, 1 no GPU, 1 failed: driver' (states in a fixed order, failed stages named)."""
    if not entries:
        return "0 nodes"
    parts = []
    for state in ("ready", "no_gpu", "skipped", "not_validated", "failed", "unreachable", "not_run"):
        chosen = [e for e in entries if e["state"] == state]
        if not chosen:
            continue
        text = "%d %s" % (len(chosen), STATE_TEXT[state])
        if state == "failed":
            stages = []
            for e in chosen:
                if e["failed_stage"] not in stages:
                    stages.append(e["failed_stage"])
            text += ": " + ", ".join(stages)
        parts.append(text)
    return "%d node%s: %s" % (len(entries), "" if len(entries) == 1 else "s", ", ".join(parts))


def groups(entries, validates):
    """The failures, one per (stage, reason), with the nodes that share it and the fix printed once."""
    found = []
    index = {}
    for entry in entries:
        if entry["state"] != "failed":
            continue
        failure = entry["failure"]
        if failure and failure["stage"] != "validate":
            pairs = [(failure["stage"], failure["message"])]
        else:
            pairs = _validate_failures(validates.get(entry["host"])) or [("validate", (failure or {}).get("message") or "failed")]
        for stage, message in pairs:
            reason, fix = split_reason(message, entry["host"])
            key = (stage, reason)
            if key not in index:
                index[key] = {"stage": stage, "reason": reason, "fix": fix, "hosts": []}
                found.append(index[key])
            index[key]["hosts"].append(entry["host"])
    return found


def build(hosts, facts_of, failures, reached, *, check_mode=False, ends_run=True):
    """The whole report. ``facts_of``/``failures``: host -> its gpunode_* facts / its failure record;
    ``reached``: the hosts whose batch ran (a host of a later batch that never started is 'not run')."""
    entries = [node_entry(h, facts_of.get(h), failures.get(h), h in reached, check_mode) for h in hosts]
    validates = dict((h, (facts_of.get(h) or {}).get("gpunode_validate")) for h in hosts)
    return {
        "tally": tally(entries),
        "check_mode": bool(check_mode),
        "complete": bool(ends_run),
        "nodes": entries,
        "failures": groups(entries, validates),
    }


COLUMNS = (("node", "host"), ("os", "os"), ("gpus", "gpus"), ("driver", "driver"), ("toolkit", "toolkit"),
           ("containerd (runtime)", "containerd"), ("state", "state"), ("changed", "changed"))


def _cell(entry, key):
    value = entry.get(key)
    if key == "state":
        text = STATE_TEXT.get(value, value)
        return text + (": " + entry["failed_stage"] if value == "failed" and entry.get("failed_stage") else "")
    if key == "changed":
        return ", ".join(value) if value else "-"
    return "-" if value in (None, "") else str(value)


def rows(report):
    return [[_cell(e, key) for _title, key in COLUMNS] for e in report["nodes"]]


def node_notes(report):
    """(host, note) for what a node's line cannot say: package repairs, reboots, its drain and cordon."""
    notes = [(e["host"], "package manager: " + e["package_manager"]) for e in report["nodes"] if e.get("package_manager")]
    notes += [(e["host"], "driver reboot: " + str(e["driver_reboot"])) for e in report["nodes"]
              if e.get("driver_reboot") not in (None, "no") and not str(e.get("driver_reboot")).startswith("no")]
    notes += [(e["host"], "kubernetes: " + e["kubernetes"]) for e in report["nodes"] if e.get("kubernetes")]
    return notes


def text_lines(report, paths=()):
    """The report as plain text lines: tally, table, failures (each reason once), then where the files are."""
    head = "Run report%s: %s" % (" (check mode: what a real run would find)" if report["check_mode"] else "", report["tally"])
    table = [[title for title, _key in COLUMNS]] + rows(report)
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = [head, ""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if report["failures"]:
        lines += ["", "Failed:"]
        for group in report["failures"]:
            lines.append("  %s on %s: %s" % (group["stage"], ", ".join(group["hosts"]), group["reason"]))
            if group["fix"]:
                lines.append("    " + group["fix"])
    notes = node_notes(report)
    if notes:
        lines += [""] + ["%s: %s" % note for note in notes]
    if paths:
        lines += ["", "Written: " + ", ".join(paths)]
    return lines


def markdown(report):
    """The same report as a Markdown page."""
    def esc(value):
        return value.replace("|", "\\|")
    out = ["# gpunode.nvidia run report", "", "**%s**%s" % (report["tally"], " (check mode)" if report["check_mode"] else ""), ""]
    out.append("| " + " | ".join(title for title, _key in COLUMNS) + " |")
    out.append("|" + "---|" * len(COLUMNS))
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows(report)]
    if report["failures"]:
        out += ["", "## Failed", ""]
        for group in report["failures"]:
            out.append("- **%s** on %s: %s" % (group["stage"], ", ".join(group["hosts"]), esc(group["reason"])))
            if group["fix"]:
                out.append("  %s" % esc(group["fix"]))
    notes = node_notes(report)
    if notes:
        out += ["", "## Notes", ""] + ["- %s: %s" % (host, esc(note)) for host, note in notes]
    return "\n".join(out) + "\n"
