"""The containerd role's refusals and its published fact, gpunode_containerd (plugins/filter/containerd.py).

The registered results are in the shape containerd_runtime, systemd_service and
command register them (containerd_runtime's keys as its RETURN documents them).
"""

from ansible_collections.gpunode.nvidia.plugins.filter import containerd as c

SETTINGS = {"name": "nvidia", "state": "present", "binary": "/usr/bin/nvidia-container-runtime", "binary_required": False,
            "cgroup_driver": "systemd", "socket": "/run/containerd/containerd.sock", "default_runtime_options": {"SystemdCgroup": True}}
RUNTIME = {"runtime_type": "io.containerd.runc.v2",
           "options": {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}}
RESULT = {
    "changed": False, "config_path": "/etc/containerd/config.toml", "dropin_path": "/etc/containerd/conf.d/99-nvidia.toml",
    "config_version": 2, "containerd_version": "1.7.24", "plugin_id": "io.containerd.grpc.v1.cri", "binary_exists": True,
    "runtime": RUNTIME,
    "effective": {"runtime": RUNTIME, "runtimes": ["nvidia", "runc"], "default_runtime_name": "runc", "enable_cdi": False,
                  "cdi_spec_dirs": ["/etc/cdi", "/var/run/cdi"], "config_version": 2, "plugin_id": "io.containerd.grpc.v1.cri"},
}
ACTIVE = {"changed": False, "status": {"ActiveState": "active", "SubState": "running"}}
SKIPPED = {"skipped": True, "changed": False}


def test_a_converged_node_publishes_what_config_dump_showed():
    fact = c.containerd_published(RESULT, ACTIVE, SKIPPED, SETTINGS)
    assert fact["problems"] == [] and fact["warnings"] == []
    assert fact["version"] == "1.7.24" and fact["config_version"] == 2 and fact["checked"] is True and fact["active"] == "active"
    assert fact["runtime"]["name"] == "nvidia" and fact["runtime"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert fact["runtime"]["binary_exists"] is True and fact["systemd_cgroup"] is True and fact["default_runtime_name"] == "runc"
    assert fact["runtime"]["default_runtime_options"] == {"SystemdCgroup": True}


def test_every_problem_is_named():
    wrong = dict(RUNTIME, options={"BinaryName": "/usr/local/bin/other", "SystemdCgroup": False})
    result = dict(RESULT, effective=dict(RESULT["effective"], runtime=wrong))
    unit = {"status": {"ActiveState": "failed", "SubState": "failed"}}
    ctr = {"rc": 1, "stderr": "connection refused\n"}
    problems = c.containerd_published(result, unit, ctr, SETTINGS)["problems"]
    assert problems == [
        "containerd is failed (failed): see journalctl -u containerd.",
        "containerd does not answer on /run/containerd/containerd.sock (ctr version): connection refused",
        "runtime nvidia has BinaryName /usr/local/bin/other in containerd config dump, not /usr/bin/nvidia-container-runtime.",
        "runtime nvidia does not have SystemdCgroup = True in containerd config dump.",
    ]


def test_a_unit_this_run_started_is_active_once_containerd_answers():
    # The systemd module returns the status it found before it started containerd.
    started = {"changed": True, "status": {"ActiveState": "inactive", "SubState": "dead"}}
    fact = c.containerd_published(RESULT, started, {"rc": 0, "stdout": "Server: 1.7.24"}, SETTINGS)
    assert fact["active"] == "active" and fact["problems"] == []
    # Check mode: nothing started, nothing asked; the unit is reported as found.
    fact = c.containerd_published(RESULT, started, SKIPPED, SETTINGS)
    assert fact["active"] == "inactive" and fact["problems"] == ["containerd is inactive (dead): see journalctl -u containerd."]
    # Started but not answering: both said.
    problems = c.containerd_published(RESULT, started, {"rc": 1, "stderr": "refused"}, SETTINGS)["problems"]
    assert problems[0] == "containerd is inactive (dead): see journalctl -u containerd." and "ctr version" in problems[1]


def test_a_runtime_missing_from_the_dump_fails():
    result = dict(RESULT, effective=dict(RESULT["effective"], runtime=None))
    assert c.containerd_published(result, ACTIVE, SKIPPED, SETTINGS)["problems"] == ["containerd config dump has no runtime nvidia."]


def test_a_missing_runtime_binary_warns_or_fails_as_asked():
    result = dict(RESULT, binary_exists=False)
    fact = c.containerd_published(result, ACTIVE, SKIPPED, SETTINGS)
    assert fact["problems"] == [] and "runtime binary /usr/bin/nvidia-container-runtime is missing" in fact["warnings"][0]
    fact = c.containerd_published(result, ACTIVE, SKIPPED, dict(SETTINGS, binary_required=True))
    assert fact["warnings"] == [] and "runtime binary /usr/bin/nvidia-container-runtime is missing" in fact["problems"][0]


def test_keep_leaves_systemd_cgroup_unjudged():
    runtime = dict(RUNTIME, options={"BinaryName": "/usr/bin/nvidia-container-runtime"})
    result = dict(RESULT, effective=dict(RESULT["effective"], runtime=runtime))
    assert c.containerd_published(result, ACTIVE, SKIPPED, dict(SETTINGS, cgroup_driver="keep"))["problems"] == []
    assert c.containerd_published(result, ACTIVE, SKIPPED, SETTINGS)["problems"] == [
        "runtime nvidia does not have SystemdCgroup = True in containerd config dump."]


def test_check_mode_with_changes_pending_publishes_what_is_known():
    pending = dict((k, v) for k, v in RESULT.items() if k != "effective")
    pending["changed"] = True
    fact = c.containerd_published(pending, SKIPPED, SKIPPED, SETTINGS)
    assert fact["checked"] is False and fact["problems"] == [] and fact["changed"] is True and fact["active"] is None
    assert fact["runtime"]["runtime_type"] == "io.containerd.runc.v2"


def test_state_absent_publishes_no_runtime():
    result = {"changed": True, "config_path": "/etc/containerd/config.toml", "containerd_version": "2.1.9", "binary_exists": True,
              "effective": {"runtime": None, "runtimes": ["runc"], "default_runtime_name": "runc"}}
    fact = c.containerd_published(result, ACTIVE, {"rc": 0}, dict(SETTINGS, state="absent"))
    assert fact["runtime"]["name"] is None and fact["problems"] == []


def test_node_problems():
    good = {"init": {"systemd": True, "pid1": "systemd"}, "os": {"family": "Debian", "id": "debian"}}
    assert c.containerd_node_problems(good) == []
    bad = {"init": {"systemd": False, "pid1": "sleep"}, "os": {"family": "Suse", "id": "sles"}}
    assert c.containerd_node_problems(bad) == [
        "systemd is not the init system (PID 1 is sleep): this role manages the containerd unit.",
        "no containerd package data for OS family Suse (sles).",
    ]
