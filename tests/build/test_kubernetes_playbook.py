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


# A unique token planted as a registry password and as a kubeconfig's user token: no byte of output may
# hold it in any form (plain, base64 of user:password, the docker config and its base64), and the only
# file that may is the rendered Secret, mode 0600, and only when gpu_cluster_render_secrets asks for it.
CANARY = "gpunode-canary-7c41e9d2"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: lab, user: {token: "%s"}}]
contexts: [{name: lab, context: {cluster: lab, user: lab}}]
current-context: lab
""" % CANARY


def canary_forms():
    import base64
    import json

    from ansible_collections.gpunode.nvidia.plugins.filter import gpu_cluster as gc
    [secret] = gc.gpu_cluster_pull_secrets(canary_credentials(), {"namespace": "nvidia-gpu"})
    encoded = secret["data"][".dockerconfigjson"]
    return [CANARY, base64.b64encode(("$oauthtoken:%s" % CANARY).encode()).decode(), encoded,
            base64.b64decode(encoded).decode(), json.dumps(CANARY)]


def canary_credentials():
    return [{"name": "nvcr-pull", "registry": "nvcr.io", "username": "$oauthtoken", "password": CANARY}]


def leaks(text):
    return [form for form in canary_forms() if form in text]


def secret_vars(tmp_path, **more):
    import json
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    kubeconfig.chmod(0o600)
    values = dict(gpu_cluster_image_pull_credentials=canary_credentials(), validate_kubeconfig=str(kubeconfig), **more)
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(values))
    return "@%s" % path


def test_render_writes_pull_secrets_only_when_asked_and_never_prints_them(tmp_path):
    dest = tmp_path / "manifests"
    base = ("-e", "gpu_cluster_mode=render", "-e", "gpu_cluster_render_dir=%s" % dest, "--diff", "-vvv")
    rc, out = play(*base, "-e", secret_vars(tmp_path))
    assert rc == 0, out
    assert "image pull Secret(s) nvcr-pull not rendered (gpu_cluster_render_secrets is false)" in out, out
    assert not list(dest.glob("**/secret-*.yaml"))
    assert leaks(out) == []
    # The pods pull with it all the same.
    assert "- name: nvcr-pull" in (dest / "device-plugin" / "daemonset-nvidia-device-plugin.yaml").read_text()

    rc, out = play(*base, "-e", secret_vars(tmp_path, gpu_cluster_render_secrets=True))
    assert rc == 0, out
    assert "image pull Secret(s) nvcr-pull rendered with mode 0600 (changed)" in out, out
    assert leaks(out) == [], [line for line in out.splitlines() if leaks(line)][:5]
    secret = dest / "image-pull-secrets" / "secret-nvcr-pull.yaml"
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    holders = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and leaks(p.read_text()))
    assert holders == ["image-pull-secrets/secret-nvcr-pull.yaml"]
    assert "secret-nvcr-pull.yaml" in (dest / "image-pull-secrets" / "kustomization.yaml").read_text()

    # Asked no more: the Secret's file is taken away again (it was ours).
    rc, out = play(*base, "-e", secret_vars(tmp_path))
    assert rc == 0 and leaks(out) == [], out
    assert not secret.exists()


def test_apply_with_a_kubeconfig_token_prints_neither_token_nor_password(tmp_path):
    """The Kubernetes client really reads the kubeconfig (its token, a server that refuses connections):
    the apply fails, is reported, and neither the token nor the pull password is in any of the output."""
    rc, out = play("-e", secret_vars(tmp_path, gpu_cluster_kubeconfig=str(tmp_path / "kubeconfig")), "--diff", "-vvv")
    assert rc == 2, out
    assert "apply FAILED" in out, out
    assert leaks(out) == [], [line for line in out.splitlines() if leaks(line)][:5]
