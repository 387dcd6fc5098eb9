"""The run report of site.yml (plugin_utils/run_report.py): states, tally, grouped failures, text and Markdown."""

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import run_report as rr

MISSING_LIB = ("Failed to import the required Python library (nvidia-ml-py) on node-1's Python /usr/bin/python3. "
               "Please read the module documentation and install it in the appropriate location. If the required "
               "library is installed, but Ansible is using the wrong Python interpreter, please consult the documentation "
               "on ansible_python_interpreter")


def preflight(gpus=1, problems=(), repair_line=None):
    fact = {"gpus": {"count": gpus}, "problems": list(problems),
            "summary": {"os": "debian 12", "arch": "x86_64", "gpus": gpus, "nvswitches": 0, "driver": "-"}}
    if repair_line:
        fact["package_repair"] = {"line": repair_line}
    return fact


def converged(result="pass", gpus=1, nvml=1, changed=False):
    return {
        "gpunode_preflight": preflight(gpus),
        "gpunode_driver": {"version": "535.261.03", "reboot": "no"},
        "gpunode_container_toolkit": {"version": "1.17.8-1", "installed": True, "changed": changed,
                                      "runtime_binary": {"path": "/usr/bin/nvidia-container-runtime", "exists": True}},
        "gpunode_containerd": {"version": "1.7.24", "active": "active", "changed": False,
                               "runtime": {"name": "nvidia", "binary_exists": True}},
        "gpunode_validate": {"result": result, "stages": [
            {"stage": "driver", "status": "pass" if result == "pass" else "fail", "reason": "no NVIDIA GPU on the PCI bus; "
             + MISSING_LIB if result == "no_gpu" else "ok", "details": {"gpu_count": nvml}},
            {"stage": "toolkit", "status": "pass" if result == "pass" else "blocked", "reason": ""}]},
    }


def test_a_converged_node_is_ready_with_its_versions_and_nvml_against_pci_gpus():
    entry = rr.node_entry("n1", converged())
    assert entry["state"] == "ready" and entry["failed_stage"] is None
    assert (entry["driver"], entry["toolkit"], entry["containerd"], entry["gpus"]) == (
        "535.261.03", "1.17.8-1", "1.7.24 (nvidia)", "1/1")
    assert entry["changed"] == []


def test_what_changed_in_the_run_is_named_per_role():
    assert rr.node_entry("n1", converged(changed=True))["changed"] == ["container_toolkit"]


def test_a_gpu_less_node_is_no_gpu_and_its_missing_library_text_is_not_a_failure():
    report = rr.build(["n1"], {"n1": converged(result="no_gpu", gpus=0, nvml=None)}, {}, {"n1"})
    assert report["nodes"][0]["state"] == "no_gpu" and report["failures"] == []
    assert report["tally"] == "1 node: 1 no GPU"
    text = "\n".join(rr.text_lines(report))
    assert "Failed to import" not in text and "no GPU" in text


def test_the_toolkit_column_says_what_is_installed_not_a_blocked_stage():
    facts = converged(result="fail")
    facts["gpunode_container_toolkit"]["runtime_binary"]["exists"] = False
    entry = rr.node_entry("n1", facts)
    assert entry["toolkit"] == "1.17.8-1 (runtime binary missing)"
    facts["gpunode_container_toolkit"]["installed"] = False
    assert rr.node_entry("n1", facts)["toolkit"] == "not installed (want 1.17.8-1)"


def test_a_stopped_containerd_is_shown():
    facts = converged()
    facts["gpunode_containerd"]["active"] = "inactive"
    assert rr.node_entry("n1", facts, check_mode=True)["containerd"] == "1.7.24 (nvidia, stopped)"
    assert rr.node_entry("n1", facts)["containerd"] == "1.7.24 (nvidia, was stopped)"


def test_the_same_reason_on_many_nodes_is_one_group_with_its_fix_printed_once():
    hosts = ["node-1", "node-2", "node-3"]
    failures = dict((h, {"stage": "driver", "task": "t", "message": MISSING_LIB.replace("node-1", h)}) for h in hosts[:2])
    facts = {"node-1": {"gpunode_preflight": preflight()}, "node-2": {"gpunode_preflight": preflight()},
             "node-3": converged()}
    report = rr.build(hosts, facts, failures, set(hosts))
    assert report["tally"] == "3 nodes: 1 ready, 2 failed: driver"
    assert len(report["failures"]) == 1
    group = report["failures"][0]
    assert group["hosts"] == ["node-1", "node-2"] and group["stage"] == "driver"
    assert group["reason"] == "Failed to import the required Python library (nvidia-ml-py) on <node>'s Python /usr/bin/python3."
    text = "\n".join(rr.text_lines(report))
    assert text.count("Please read the module documentation") == 1
    assert "driver on node-1, node-2: Failed to import" in text


def test_the_tally_orders_states_and_names_every_failed_stage():
    hosts = ["a", "b", "c", "d", "e", "f"]
    facts = {"a": converged(), "b": converged(), "c": converged(), "d": converged(),
             "e": converged(result="no_gpu", gpus=0), "f": {"gpunode_preflight": preflight()}}
    failures = {"f": {"stage": "driver", "task": "t", "message": "dkms build failed"}}
    assert rr.build(hosts, facts, failures, set(hosts))["tally"] == "6 nodes: 4 ready, 1 no GPU, 1 failed: driver"


def test_hosts_without_facts_are_unreachable_in_batches_that_ran_and_not_run_after():
    report = rr.build(["a", "b", "c"], {"a": converged()}, {}, {"a", "b"})
    assert [e["state"] for e in report["nodes"]] == ["ready", "unreachable", "not_run"]
    assert report["tally"] == "3 nodes: 1 ready, 1 unreachable, 1 not run"


def test_a_node_that_failed_validation_groups_by_the_failed_stage_reason():
    facts = converged(result="fail")
    facts["gpunode_validate"]["stages"][0]["reason"] = "NVML sees 0 GPU(s), 1 on the PCI bus. Reseat the card."
    failure = rr.failure_record({"name": "Fail the node", "tags": ["validate"]}, {"msg": "did not validate"}, facts)
    assert failure["stage"] == "validate"
    report = rr.build(["n1"], {"n1": facts}, {"n1": failure}, {"n1"})
    assert report["failures"] == [{"stage": "validate: driver", "reason": "NVML sees 0 GPU(s), 1 on the PCI bus.",
                                   "fix": "Reseat the card.", "hosts": ["n1"]}]


def test_the_failed_stage_is_the_role_tag_of_the_failed_task():
    record = rr.failure_record({"name": "Build the module", "tags": ["driver"]}, {"msg": "dkms failed"},
                               {"gpunode_preflight": preflight()})
    assert record == {"stage": "driver", "task": "Build the module", "message": "dkms failed"}


def test_without_a_role_tag_the_stage_is_the_first_fact_not_published():
    # An argument-spec check of the container_toolkit role (tags: always) failed.
    record = rr.failure_record({"name": "Validating arguments", "tags": ["always"]}, {"msg": "bad value"},
                               {"gpunode_preflight": preflight(), "gpunode_driver": {"version": "1"}, "gpunode_container_toolkit": None})
    assert record["stage"] == "container_toolkit"


def test_a_preflight_refusal_is_reported_with_its_problems():
    facts = {"gpunode_preflight": preflight(problems=["unsupported OS plan9 1", "no systemd"])}
    record = rr.failure_record({"name": "Refuse nodes", "tags": ["always"]}, {"msg": "preflight refused n1:\n - ..."}, facts)
    assert record == {"stage": "preflight", "task": "Refuse nodes", "message": "unsupported OS plan9 1; no systemd"}
    report = rr.build(["n1"], {"n1": facts}, {"n1": record}, {"n1"})
    assert report["tally"] == "1 node: 1 failed: preflight"
    assert "  preflight on n1: unsupported OS plan9 1; no systemd" in rr.text_lines(report)


def test_a_long_reason_is_cut_and_kept_whole_as_the_fix():
    reason, fix = rr.split_reason("x" * 500)
    assert len(reason) == rr.REASON_MAX and reason.endswith("...") and fix == "x" * 500


def test_text_starts_with_the_tally_and_says_check_mode_and_where_the_files_are():
    report = rr.build(["n1"], {"n1": converged()}, {}, {"n1"}, check_mode=True)
    lines = rr.text_lines(report, ["/r/run-report.json"])
    assert lines[0] == "Run report (check mode: what a real run would find): 1 node: 1 ready"
    assert lines[2].split() == ["node", "os", "gpus", "driver", "toolkit", "containerd", "(runtime)", "state", "changed"]
    assert lines[3].split()[0] == "n1" and lines[-1] == "Written: /r/run-report.json"


def test_the_package_manager_line_and_a_pending_reboot_are_printed_under_the_table():
    facts = converged()
    facts["gpunode_preflight"]["package_repair"] = {"line": "repaired: dpkg --configure -a"}
    facts["gpunode_driver"]["reboot"] = "required: the module in use is older"
    lines = rr.text_lines(rr.build(["n1"], {"n1": facts}, {}, {"n1"}))
    assert "n1: package manager: repaired: dpkg --configure -a" in lines
    assert "n1: driver reboot: required: the module in use is older" in lines


def test_markdown_has_the_tally_a_table_row_per_node_and_the_failures():
    failures = {"n2": {"stage": "containerd", "task": "t", "message": "config.toml is not valid TOML | line 3"}}
    report = rr.build(["n1", "n2"], {"n1": converged(), "n2": {"gpunode_preflight": preflight()}}, failures, {"n1", "n2"})
    page = rr.markdown(report)
    assert "**2 nodes: 1 ready, 1 failed: containerd**" in page
    assert "\n| n1 | debian 12 |" in page and "\n| n2 | debian 12 |" in page
    assert "- **containerd** on n2: config.toml is not valid TOML \\| line 3" in page


def test_an_empty_run_says_so():
    assert rr.build([], {}, {}, set())["tally"] == "0 nodes"


def rollout(**fields):
    fact = {"enabled": True, "node": "n1", "drained": True, "cordoned_before": False, "uncordoned": False, "change": "driver"}
    fact.update(fields)
    return fact


def test_the_drain_and_cordon_of_each_node_is_a_note_under_the_table():
    facts_of = {"n1": dict(converged(), gpunode_rollout=rollout(uncordoned=True)),
                "n2": dict(converged(), gpunode_rollout=rollout(cordoned_before=True, change="containerd")),
                "n3": dict(converged(result="fail"), gpunode_rollout=rollout()),
                "n4": dict(converged(), gpunode_rollout=rollout(drained=False, change=None)),
                "n5": dict(converged(), gpunode_rollout=rollout(drained=False, change="container_toolkit"))}
    report = rr.build(sorted(facts_of), facts_of, {}, set(facts_of))
    notes = dict((e["host"], e["kubernetes"]) for e in report["nodes"])
    assert notes == {"n1": "drained before its driver changed, uncordoned after validate passed",
                     "n2": "drained before its containerd changed; it was cordoned before the run and stays cordoned",
                     "n3": "drained before its driver changed; left cordoned (failed): uncordon it when it is fixed",
                     "n4": None, "n5": "would drain it before its container_toolkit changes"}
    text = rr.text_lines(report)
    assert "n3: kubernetes: drained before its driver changed; left cordoned (failed): uncordon it when it is fixed" in text
    assert not [line for line in text if line.startswith("n4:")]
    assert "- n1: kubernetes: drained before its driver changed, uncordoned after validate passed" in rr.markdown(report)


def test_a_drain_that_failed_is_the_drain_stage():
    record = rr.failure_record({"name": "Cordon the node and evict its pods", "tags": ["always", "rollout", "driver"]},
                               {"msg": "Failed to delete pod default/a due to: Cannot evict pod as it would violate the pod's"
                                       " disruption budget."}, {"gpunode_preflight": preflight()})
    assert record["stage"] == "drain" and "disruption budget" in record["message"]
