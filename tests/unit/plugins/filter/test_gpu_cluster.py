"""The gpu_cluster role: which nodes have GPUs, the shared settings, refusals, and what a run did."""

from ansible_collections.gpunode.nvidia.plugins.filter import gpu_cluster as gc

HOSTVARS = {
    "gpu-1": {"gpunode_preflight": {"gpus": {"count": 8}},
              "gpunode_container_toolkit": {"cdi_enabled": True},
              "gpunode_containerd": {"runtime": {"name": "nvidia"}},
              "gpunode_validate": {"stages": [{"stage": "driver", "details": {"gpus": [{"mig_enabled": True}]}}]}},
    "gpu-2": {"gpunode_preflight": {"gpus": {"count": 4}}, "gpunode_container_toolkit": {"cdi_enabled": False},
              "gpu_cluster_node_name": "gpu-2.example"},
    "cpu-1": {"gpunode_preflight": {"gpus": {"count": 0}}},
    "never-ran": {},
}
INPUTS = {
    "mode": "apply", "render_dir": "/tmp/out", "kubeconfig": "", "context": "", "namespace": "nvidia-gpu", "registry": "",
    "image_pull_secrets": [], "runtime_class": "nvidia", "runtime_class_handler": "auto", "use_runtime_class": True,
    "tolerations": [], "priority_class": "system-node-critical", "node_selection": "either", "label_nodes": True,
    "max_unavailable": 1, "labels": {}, "wait": True, "wait_timeout": 600,
}


def nodes():
    return gc.gpu_cluster_nodes(HOSTVARS, ["gpu-1", "gpu-2", "cpu-1", "never-ran", "not-in-inventory"])


def test_nodes_come_only_from_hosts_that_ran_preflight():
    found = nodes()
    assert sorted(found) == ["cpu-1", "gpu-1", "gpu-2"]
    assert found["gpu-1"] == {"node_name": "gpu-1", "gpus": 8, "cdi_enabled": True, "mig_enabled": True, "runtime_name": "nvidia"}
    assert found["gpu-2"]["node_name"] == "gpu-2.example"


def test_settings_resolve_the_handler_cdi_and_mig_from_the_nodes():
    settings = gc.gpu_cluster_settings(dict(INPUTS, nodes=nodes()))
    assert settings["runtime_class_handler"] == "nvidia"
    assert settings["cdi_enabled"] is False  # gpu-2 has no CDI: CDI device lists would fail there
    assert settings["mig_enabled"] is True
    assert settings["render_dir"] is None
    assert gc.gpu_cluster_settings(dict(INPUTS, runtime_class_handler="nvidia-cdi", nodes={}))["runtime_class_handler"] == "nvidia-cdi"
    assert gc.gpu_cluster_settings(dict(INPUTS, max_unavailable="2", nodes={}))["max_unavailable"] == 2


def test_only_gpu_nodes_are_labelled_and_only_in_apply_mode():
    settings = gc.gpu_cluster_settings(dict(INPUTS, nodes=nodes()))
    made = gc.gpu_cluster_objects(settings)
    assert [o["kind"] for o in made["objects"]] == ["Namespace", "RuntimeClass"]
    assert [p["metadata"]["name"] for p in made["node_labels"]] == ["gpu-1", "gpu-2.example"]
    rendered = gc.gpu_cluster_settings(dict(INPUTS, mode="render", nodes=nodes()))
    assert gc.gpu_cluster_objects(rendered)["node_labels"] == []
    assert "render mode labels no node" in gc.gpu_cluster_summary(rendered, {})[0]


def test_bad_input_is_refused_with_the_variable_named():
    problems = gc.gpu_cluster_problems(dict(INPUTS, namespace="NVIDIA_GPU", node_selection="gpu", max_unavailable=0,
                                            image_pull_secrets=["Bad_Name"], mode="apply", kubeconfig="/nowhere/kubeconfig",
                                            kubeconfig_exists=False, control_host="localhost"))
    text = "\n".join(problems)
    assert "gpu_cluster_namespace is 'NVIDIA_GPU': a namespace is a DNS-1123 label" in text
    assert "gpu_cluster_node_selection is 'gpu'" in text
    assert "gpu_cluster_max_unavailable is 0" in text
    assert "gpu_cluster_image_pull_secrets has 'Bad_Name'" in text
    assert "gpu_cluster_kubeconfig is /nowhere/kubeconfig, which does not exist on localhost" in text
    assert gc.gpu_cluster_problems(dict(INPUTS, max_unavailable="25%")) == []
    assert "gpu_cluster_use_runtime_class is true" in gc.gpu_cluster_problems(dict(INPUTS, runtime_class=""))[0]


def test_outcome_reports_each_daemonset_rollout():
    applied = {"changed": True, "result": {"results": [
        {"changed": True, "result": {"kind": "ServiceAccount", "metadata": {"name": "sa"}}},
        {"changed": True, "result": {"kind": "DaemonSet", "metadata": {"name": "ds"}, "status": {
            "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3}}}]}}
    outcome = gc.gpu_cluster_outcome(applied, "device-plugin", [{"kind": "DaemonSet", "metadata": {"name": "ds", "namespace": "n"}}])
    assert outcome["rollout"] == {"ds": {"desired": 3, "ready": 3, "updated": 3, "unavailable": 0}}
    assert outcome["objects"] == ["DaemonSet n/ds"]
    single = {"changed": False, "result": {"kind": "DaemonSet", "metadata": {"name": "ds"}, "status": {"desiredNumberScheduled": 1}}}
    assert gc.gpu_cluster_outcome(single, "x", [])["rollout"]["ds"]["desired"] == 1
    rendered = gc.gpu_cluster_outcome({"changed": True, "files": ["/o/a.yaml"], "changed_files": ["/o/a.yaml"]}, "x", [])
    assert rendered["mode"] == "render" and rendered["files"] == ["/o/a.yaml"]
    assert gc.gpu_cluster_outcome({"skipped": True}, "x", [])["mode"] is None


def test_report_line_says_what_was_rolled_out():
    outcome = {"component": "dcgm-exporter", "mode": "apply", "objects": ["a", "b"], "changed": True,
               "rollout": {"dcgm-exporter": {"desired": 3, "ready": 2, "updated": 3}}}
    assert gc.gpu_cluster_report(outcome) == "dcgm-exporter: applied 2 object(s) (changed); DaemonSet dcgm-exporter ready 2/3, updated 3"
    rendered = {"component": "x", "mode": "render", "files": ["a", "b"], "changed_files": ["a"], "removed_files": []}
    assert gc.gpu_cluster_report(rendered) == "x: rendered 2 file(s), 1 changed, 0 removed"


def test_a_failed_apply_is_reported_not_hidden():
    outcome = gc.gpu_cluster_outcome({"failed": True, "msg": "Resource apply timed out"}, "device-plugin", [])
    assert outcome["failed"] is True
    assert gc.gpu_cluster_report(outcome) == "device-plugin: apply FAILED: Resource apply timed out"


def test_device_plugin_labels_every_gpu_node_so_a_removed_config_is_taken_off():
    from ansible_collections.gpunode.nvidia.plugins.filter.device_plugin import device_plugin_node_labels
    cluster = gc.gpu_cluster_settings(dict(INPUTS, nodes=nodes()))
    patches = device_plugin_node_labels({"node_configs": {"gpu-1": "ts4"}}, cluster)
    by_node = dict((p["metadata"]["name"], p["metadata"]["labels"]) for p in patches)
    assert by_node == {"gpu-1": {"nvidia.com/gpu.present": "true", "nvidia.com/device-plugin.config": "ts4"},
                       "gpu-2.example": {"nvidia.com/gpu.present": "true"}}
    rendered = gc.gpu_cluster_settings(dict(INPUTS, mode="render", nodes=nodes()))
    assert device_plugin_node_labels({"node_configs": {"gpu-1": "ts4"}}, rendered) == []


CANARY = "canary-8f3a1c-pull-password"
CREDENTIALS = [{"name": "nvcr-pull", "registry": "nvcr.io", "username": "$oauthtoken", "password": CANARY}]


def test_pull_secret_is_a_docker_config_the_kubelet_reads():
    import base64
    import json
    settings = gc.gpu_cluster_settings(dict(INPUTS, image_pull_secrets=["mine"], image_pull_credentials=["nvcr-pull"], nodes={}))
    assert settings["image_pull_secrets"] == ["mine", "nvcr-pull"]
    assert settings["pull_secrets_made"] == ["nvcr-pull"]
    [secret] = gc.gpu_cluster_pull_secrets(CREDENTIALS, settings)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["namespace"] == "nvidia-gpu" and secret["metadata"]["name"] == "nvcr-pull"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["nvcr.io"]
    assert entry["password"] == CANARY
    assert base64.b64decode(entry["auth"]).decode() == "$oauthtoken:" + CANARY
    # Only names reach the published fact.
    assert CANARY not in repr(settings)


def test_pull_secret_names_are_checked():
    problems = gc.gpu_cluster_problems(dict(INPUTS, image_pull_credentials=["Bad_Name", "ok", "ok"]))
    assert any("'Bad_Name'" in p for p in problems)
    assert any("names the Secret ok more than once" in p for p in problems)


def test_secrets_report_masks_every_form_of_the_password_in_a_failure():
    import base64
    settings = gc.gpu_cluster_settings(dict(INPUTS, image_pull_credentials=["nvcr-pull"], nodes={}))
    [secret] = gc.gpu_cluster_pull_secrets(CREDENTIALS, settings)
    encoded = secret["data"][".dockerconfigjson"]
    auth = base64.b64encode(("$oauthtoken:" + CANARY).encode()).decode()
    failure = {"failed": True, "msg": "rejected %s / %s / %s / %s" % (CANARY, encoded, auth, base64.b64decode(encoded).decode())}
    report = gc.gpu_cluster_secrets_report(failure, CREDENTIALS, settings)
    assert report["failed"] is True
    assert CANARY not in report["line"] and encoded not in report["line"] and auth not in report["line"]
    assert report["line"].count("<masked>") == 4
    assert gc.gpu_cluster_secrets_report({"changed": True}, CREDENTIALS, settings) == {
        "failed": False, "line": "image pull Secret(s) nvcr-pull applied (changed)"}


def test_render_mode_writes_the_secrets_only_when_asked():
    render = gc.gpu_cluster_settings(dict(INPUTS, mode="render", image_pull_credentials=["nvcr-pull"], nodes={}))
    line = gc.gpu_cluster_secrets_report({"changed": True}, CREDENTIALS, render)["line"]
    assert "not rendered (gpu_cluster_render_secrets is false)" in line
    asked = dict(render, render_secrets=True)
    assert gc.gpu_cluster_secrets_report({"changed": True}, CREDENTIALS, asked)["line"] == (
        "image pull Secret(s) nvcr-pull rendered with mode 0600 (changed)")
    summary = gc.gpu_cluster_summary(asked, {"component": "gpu-cluster", "mode": "render"},
                                     gc.gpu_cluster_secrets_report({}, CREDENTIALS, asked))
    assert summary[2] == "image pull Secret(s) nvcr-pull rendered with mode 0600"
