"""Bad role variables are refused before any change on the node, with the variable named in one line.

The values are the ones a review of the roles found accepted (issue: "One house for eight roles").
"""

import pytest

from .conftest import playbook
from .test_preflight_refusals import SNAPSHOT, recap

BAD = [
    ("validate_gpu_count=-2", "validate_gpu_count is -2, below -1"),
    ("validate_product_pattern=H100(", "validate_product_pattern is not a valid regular expression"),
    ("validate_driver_version=5x", "validate_driver_version is '5x', not a driver version"),
    ("validate_min_cuda_version=twelve", "validate_min_cuda_version is 'twelve', not a CUDA version"),
    ("containerd_runtime_name='nvi dia'", "containerd_runtime_name is 'nvi dia': a RuntimeClass handler must be a DNS-1123 label"),
    ("containerd_runtime_name=nvidia.gpu", "containerd_runtime_name is 'nvidia.gpu': a RuntimeClass handler must be a DNS-1123 label"),
    ("containerd_runtime_default=true containerd_runtime_state=absent",
     "containerd_runtime_default is true and containerd_runtime_state is absent"),
    ("containerd_cgroup_driver=bogus", "value of containerd_cgroup_driver must be one of: auto, systemd, cgroupfs, keep, got: bogus"),
    ("container_toolkit_source=mirror container_toolkit_mirror_url=http://mirror.example.test/libnvidia-container/stable/deb/amd64",
     "container_toolkit_source is mirror but container_toolkit_mirror_key_url is empty"),
    ("container_toolkit_version=latest", "container_toolkit_version is 'latest', not one exact version with its revision"),
    ("container_toolkit_version=1.2", "container_toolkit_version is '1.2', not one exact version with its revision"),
    ("container_toolkit_mode=gpu", "value of container_toolkit_mode must be one of: , auto, legacy, cdi, csv, jit-cdi, got: gpu"),
    ("container_toolkit_key_fingerprint=F796ECB0", "container_toolkit_key_fingerprint is 'F796ECB0', not a key fingerprint"),
]
REFUSAL = "gpunode.nvidia refused its variables before any change: "


@pytest.fixture(scope="module")
def node():
    from .conftest import Nodes

    made = Nodes()
    name = made.start("bookworm")
    yield made, name
    made.remove()


@pytest.mark.parametrize("extra, words", BAD, ids=[b[0] for b in BAD])
def test_bad_value_is_refused_before_any_change(node, tmp_path, extra, words):
    made, name = node
    before = made.exec(name, "sh", "-c", SNAPSHOT)
    run = playbook([name], tmp_path, "playbooks/site.yml", "-e", extra)
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    # One line, read first: Ansible's error line carries the refusal, each problem naming its variable.
    lines = [line for line in out.splitlines() if REFUSAL in line]
    assert lines and words in lines[0], out
    assert "argument_spec_data" not in out
    stats = recap(out, name)
    assert stats["changed"] == 0 and stats["failed"] == 1, stats
    assert made.exec(name, "sh", "-c", SNAPSHOT) == before


def test_a_misspelled_variable_is_named_with_the_nearest_known_one(node, tmp_path):
    made, name = node
    warning = ("[WARNING]: containerd_cgroup_drivr is not a variable of any gpunode.nvidia role (it is ignored); "
               "did you mean containerd_cgroup_driver?")
    run = playbook([name], tmp_path, "playbooks/site.yml", "--tags", "preflight", "-e", "containerd_cgroup_drivr=systemd")
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0 and warning in out, out
    # Said by the play's first task: together with a bad value, the run stops there, and
    # the warning is still given (nothing ran on the node but the argument spec check; then, on the
    # controller, site.yml's rescue records the failure, the run report prints and the node fails again:
    # ok = the argument spec, the rescue and the report; skipped = the rollout role, without a kubeconfig).
    run = playbook([name], tmp_path, "playbooks/site.yml", "-e", "containerd_cgroup_drivr=systemd validate_gpu_count=-3")
    out = run.stdout + run.stderr
    assert run.returncode == 2 and warning in " ".join(out.split()), out
    assert recap(out, name) == {"ok": 3, "changed": 0, "unreachable": 0, "failed": 1, "skipped": 1, "rescued": 1, "ignored": 0}, out
    assert "Run report: 1 node: 1 failed: preflight" in out, out


def test_an_unreachable_repository_stops_before_any_change(node, tmp_path):
    """driver_source cuda_repo with NVIDIA's repository out of reach (as it is here): the key fetch is the first change."""
    made, name = node
    before = made.exec(name, "sh", "-c", SNAPSHOT)
    run = playbook([name], tmp_path, "playbooks/site.yml", "--tags", "driver",
                   "-e", "driver_source=cuda_repo driver_kernel_release=packaged")
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "Fetch and check the repository's signing key before any change" in out
    stats = recap(out, name)
    assert stats["changed"] == 0 and stats["failed"] == 1, stats
    assert made.exec(name, "sh", "-c", SNAPSHOT) == before


def test_a_key_file_that_is_not_a_key_stops_before_any_change(node, tmp_path):
    """A mirror in a directory on the node whose "key" is some other file: refused by repo_key, nothing written."""
    made, name = node
    before = made.exec(name, "sh", "-c", SNAPSHOT)
    run = playbook([name], tmp_path, "playbooks/site.yml", "--tags", "container_toolkit",
                   "-e", "container_toolkit_source=mirror container_toolkit_mirror_url=file:///srv/nvidia-mirror/amd64"
                         " container_toolkit_mirror_key_url=file:///etc/os-release"
                         " container_toolkit_key_fingerprint=C95B321B61E88C1809C4F759DDCAE044F796ECB0")
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "file:///etc/os-release is not an OpenPGP public key" in " ".join(out.split()), out
    stats = recap(out, name)
    assert stats["changed"] == 0 and stats["failed"] == 1, stats
    assert made.exec(name, "sh", "-c", SNAPSHOT) == before
