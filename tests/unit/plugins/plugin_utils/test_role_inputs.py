"""Role variables refused or warned about before any change (plugin_utils/role_inputs.py)."""

import os

import pytest

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import role_inputs as ri

from ...conftest import ROOT

ROLES = ri.load_roles(os.path.join(ROOT, "roles"))


def test_every_role_with_a_spec_is_loaded():
    assert {"preflight", "driver", "containerd", "validate"} <= set(ROLES)
    assert "validate_gpu_count" in ROLES["validate"]["options"]
    assert ROLES["validate"]["defaults"]["validate_gpu_count"] == -1


def test_every_checked_variable_is_a_role_variable():
    known = set(n for r in ROLES.values() for n in r["options"])
    assert set(ri.CHECKS) <= known, sorted(set(ri.CHECKS) - known)


def test_the_defaults_pass_the_checks():
    values = {}
    for role in ROLES.values():
        values.update((k, v) for k, v in role["defaults"].items() if "{{" not in str(v))
    assert ri.problems(values) == []


@pytest.mark.parametrize("name, value, words", [
    ("validate_gpu_count", -2, "validate_gpu_count is -2, below -1 (-1 means every GPU preflight found)"),
    ("validate_gpu_count", "-2", "below -1"),
    ("validate_product_pattern", "H100(", "validate_product_pattern is not a valid regular expression"),
    ("validate_driver_version", "5x", "validate_driver_version is '5x', not a driver version"),
    ("validate_min_cuda_version", "twelve", "validate_min_cuda_version is 'twelve', not a CUDA version"),
    ("validate_driver_branch", "58", "validate_driver_branch is '58'"),
    ("driver_version", "580.x", "driver_version is '580.x'"),
    ("driver_branch", "r580", "driver_branch is 'r580'"),
    ("containerd_runtime_name", "nvi dia", "containerd_runtime_name is 'nvi dia': a RuntimeClass handler must be a DNS-1123 label"),
    ("containerd_runtime_name", "nvidia.gpu", "containerd_runtime_name is 'nvidia.gpu'"),
    ("containerd_runtime_name", "NVIDIA", "DNS-1123"),
    ("containerd_runtime_name", "a" * 64, "DNS-1123"),
    ("preflight_min_gpus", -1, "preflight_min_gpus is -1, below 0"),
    ("driver_mirror_url", "mirror.local/nvidia", "not an http(s):// or file:// URL"),
    ("validate_skip", {"cude": "typo"}, "validate_skip names cude, not a validate stage (the stages: driver, toolkit, container, cuda, plugin)"),
    ("validate_cuda_devices", [0, -1, "x"], "validate_cuda_devices has -1, 'x': CUDA device indexes are integers from 0"),
    ("validate_cuda_cdi_devices", ["nvidia.com/gpu"], "validate_cuda_cdi_devices has 'nvidia.com/gpu': a CDI device is vendor/class=name"),
    ("validate_cuda_timeout", 0, "validate_cuda_timeout is 0, below 1"),
    ("rollout_kubeconfig", "/nonexistent/kubeconfig", "rollout_kubeconfig is '/nonexistent/kubeconfig', which does not exist on the controller"),
    ("rollout_pod_selectors", ["app in (a,b)", "ok=1"], "rollout_pod_selectors has 'app in (a,b)': each is one label selector term"),
    ("rollout_drain_retries", -1, "rollout_drain_retries is -1, below 0"),
    ("rollout_drain_timeout", 0, "rollout_drain_timeout is 0, below 1"),
    ("rollout_grace_period", -5, "rollout_grace_period is -5, below 0"),
])
def test_bad_values_are_refused_with_the_variable_named(name, value, words):
    found = ri.problems({name: value})
    assert len(found) == 1 and words in found[0] and found[0].startswith(name), found


@pytest.mark.parametrize("name, value", [
    ("validate_gpu_count", -1), ("validate_gpu_count", 8), ("validate_product_pattern", "H100|H200"),
    ("validate_driver_version", "580.95.05"), ("validate_driver_version", "535.261.03"), ("validate_driver_version", ""),
    ("validate_min_cuda_version", "12.4"), ("validate_min_cuda_version", "13"), ("driver_branch", "580"),
    ("containerd_runtime_name", "nvidia"), ("containerd_runtime_name", "nvidia-cdi"), ("containerd_runtime_name", "a" * 63),
    ("driver_mirror_url", "https://mirror.example/cuda/"), ("driver_mirror_url", "file:///srv/mirror"),
    ("validate_skip", {"cuda": "no CUDA here", "plugin": ""}), ("validate_cuda_devices", [0, 3]),
    ("validate_cuda_cdi_devices", ["nvidia.com/gpu=all", "nvidia.com/gpu=GPU-4a1d6a0e-8a57-1f2c-6c1b-0a9e3c5d7f10", "nvidia.com/mig=0:1"]),
    ("rollout_kubeconfig", ""), ("rollout_kubeconfig", os.path.join(ROOT, "galaxy.yml")),
    ("rollout_pod_selectors", ["nvidia.com/gpu.workload=true", "app!=web", "batch", "!canary"]),
])
def test_good_values_pass(name, value):
    assert ri.problems({name: value}) == []


def test_default_runtime_with_state_absent_is_a_contradiction():
    found = ri.problems({"containerd_runtime_default": True, "containerd_runtime_state": "absent"})
    assert found and "containerd_runtime_default is true and containerd_runtime_state is absent" in found[0]
    assert ri.problems({"containerd_runtime_default": False, "containerd_runtime_state": "absent"}) == []
    assert ri.problems({"containerd_runtime_default": True, "containerd_runtime_state": "present"}) == []


def test_one_of_the_two_venv_wheel_inputs_alone_is_a_contradiction():
    # With wheels pip reads no index: the other binding would not be found.
    found = ri.problems({"driver_nvml_wheel": "/wheels/nvidia_ml_py-13.615.71-py3-none-any.whl"})
    assert len(found) == 1 and found[0].startswith("driver_nvml_wheel is set but driver_cuda_bindings_wheels is not")
    found = ri.problems({"driver_cuda_bindings_wheels": ["/wheels/cuda_bindings.whl"]})
    assert len(found) == 1 and found[0].startswith("driver_cuda_bindings_wheels is set but driver_nvml_wheel is not")
    both = {"driver_nvml_wheel": "/w/a.whl", "driver_cuda_bindings_wheels": ["/w/b.whl", "/w/c.whl"]}
    assert ri.problems(both) == []
    assert ri.problems({"driver_nvml_wheel": "/w/a.whl", "driver_cuda_bindings_package": "none"}) == []
    assert ri.problems({"driver_nvml_wheel": "/w/a.whl", "driver_nvml_install": "distro"}) == []


def test_a_typo_is_named_with_the_nearest_known_name():
    found = ri.unknown_variables(["containerd_cgroup_drivr", "validate_gpu_cont", "driver_source", "ansible_host",
                                  "gpunode_preflight", "_driver_plan", "preflight_zzz_qqq"], ROLES)
    assert found == [("containerd_cgroup_drivr", "containerd_cgroup_driver"), ("preflight_zzz_qqq", None),
                     ("validate_gpu_cont", "validate_gpu_count")]
    assert ri.unknown_warning("containerd_cgroup_drivr", "containerd_cgroup_driver") == (
        "containerd_cgroup_drivr is not a variable of any gpunode.nvidia role (it is ignored); did you mean containerd_cgroup_driver?")


def test_other_collections_containerd_variables_are_not_typos():
    names = ["containerd_storage_dir", "containerd_registries_mirrors", "containerd_limit_mem", "containerd_package_state"]
    assert ri.unknown_variables(names, ROLES) == []


def test_the_longest_prefix_owns_a_variable():
    roles = {"container": {"options": {}}, "containerd": {"options": {"containerd_x": {}}}}
    assert ri.owner("containerd_y", roles) == "containerd" and ri.owner("container_y", roles) == "container"
    assert ri.owner("other_y", roles) is None


def test_refusal_is_one_line_naming_each_problem():
    text = ri.refusal(["a is bad", "b is worse"])
    assert "\n" not in text and text.endswith("a is bad; b is worse")
