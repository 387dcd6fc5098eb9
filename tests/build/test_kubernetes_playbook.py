"""playbooks/kubernetes.yml from localhost: render mode writes every role's objects and a second run
changes nothing; bad input stops before anything is rendered. The apply path needs a Kubernetes API
server, which cannot be installed here: it runs only when GPUNODE_KUBECONFIG names a kubeconfig,
and is reported as skipped (never passed) otherwise."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def play(*extra):
    argv = ["ansible-playbook", "playbooks/kubernetes.yml", "-i", "localhost,", "-c", "local",
            "-e", "gpunode_k8s_hosts=localhost", "-e", "ansible_python_interpreter=%s" % sys.executable] + list(extra)
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    return proc.returncode, proc.stdout + proc.stderr


def changed(out):
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", out).group(1))


def test_render_mode_writes_every_role_and_a_second_run_changes_nothing(tmp_path):
    dest = tmp_path / "manifests"
    rc, out = play("-e", "gpu_cluster_mode=render", "-e", "gpu_cluster_render_dir=%s" % dest)
    assert rc == 0, out
    assert changed(out) == 4, out
    for component in ("gpu-cluster", "device-plugin", "gpu-feature-discovery", "dcgm-exporter"):
        assert (dest / component / "kustomization.yaml").is_file(), component
    assert (dest / "device-plugin" / "daemonset-nvidia-device-plugin.yaml").is_file()
    assert "render mode labels no node" in out
    rc, out = play("-e", "gpu_cluster_mode=render", "-e", "gpu_cluster_render_dir=%s" % dest)
    assert rc == 0, out
    assert changed(out) == 0, out


@pytest.mark.parametrize(("extra", "message"), [
    (["-e", '{"device_plugin_configs": {"default": {"mps": {"replicas": 1}}}}'], "device_plugin_configs.default.mps.replicas is 1: MPS needs at least 2"),
    (["-e", '{"device_plugin_configs": {"default": {"mps": {"replicas": 2}, "mig_strategy": "mixed"}}}'], "MPS shares full GPUs only"),
    (["-e", '{"device_plugin_configs": {"default": {"mig_strategy": "all"}}}'], "mig_strategy is 'all': choose one of none, single, mixed"),
    (["-e", '{"dcgm_exporter_image": {"registry": "nvcr.io/nvidia", "repository": "k8s/dcgm-exporter", "tag": ""}}'], "dcgm_exporter_image.tag is empty"),
    (["-e", "gpu_cluster_namespace=GPU_Operator"], "gpu_cluster_namespace is 'GPU_Operator'"),
    (["-e", "gpu_cluster_mode=apply", "-e", "gpu_cluster_kubeconfig=/nonexistent/kubeconfig"], "which does not exist on localhost"),
])
def test_bad_input_stops_before_anything_is_rendered_or_applied(tmp_path, extra, message):
    dest = tmp_path / "manifests"
    rc, out = play("-e", "gpu_cluster_mode=render", "-e", "gpu_cluster_render_dir=%s" % dest, *extra)
    assert rc == 2, out
    assert message in out, out
    assert not dest.exists()
    assert changed(out) == 0


NO_CLUSTER = "apply path not run: no Kubernetes API server here (set GPUNODE_KUBECONFIG to a kubeconfig to run it)"


@pytest.mark.skipif(not os.environ.get("GPUNODE_KUBECONFIG"), reason=NO_CLUSTER)
def test_apply_path_against_a_real_cluster():
    kubeconfig = os.environ["GPUNODE_KUBECONFIG"]
    rc, out = play("-e", "gpu_cluster_kubeconfig=%s" % kubeconfig)
    assert rc == 0, out
    rc, out = play("-e", "gpu_cluster_kubeconfig=%s" % kubeconfig)
    assert rc == 0 and changed(out) == 0, out
