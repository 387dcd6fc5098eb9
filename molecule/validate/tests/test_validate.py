"""Verify the validate role's per-node JSON reports against what the lab nodes themselves say."""

import json
import os

import pytest
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
REPORTS = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "validate-reports")
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
# Commands go straight through podman.
testinfra_hosts = ["podman://" + name for name in RUNNER.get_hosts("gpu_nodes")]
CONTAINER_NODES = RUNNER.get_hosts("container_nodes")


def report(host):
    with open(os.path.join(REPORTS, host.backend.name + ".json")) as handle:
        return json.load(handle)


def stages(host):
    return dict((s["stage"], s) for s in report(host)["stages"])


def test_gpu_less_node_is_reported_and_does_not_fail_the_play(host):
    data = report(host)
    assert data["host"] == host.backend.name
    assert data["gpus_on_pci"] == 0
    assert data["result"] == "no_gpu" and data["fails_play"] is False
    assert [s["stage"] for s in data["stages"]] == ["driver", "toolkit", "container", "cuda", "plugin"]


def test_driver_stage_says_driver_not_loaded_and_no_gpu(host):
    driver = stages(host)["driver"]
    assert driver["status"] == "fail"
    assert driver["details"]["nvml_error"] == "DRIVER_NOT_LOADED"
    assert "NVIDIA driver not loaded" in driver["reason"]
    assert "no NVIDIA GPU on the PCI bus" in driver["reason"]
    assert [c["check"] for c in driver["details"]["checks"]] == ["nvml"]


def test_nvml_came_from_the_expected_binding(host):
    if host.backend.name in CONTAINER_NODES:
        # The system Python has no binding: the answer came from the respawn into the venv.
        assert host.run("python3 -c 'import pynvml'").rc != 0
        assert host.run("/opt/gpunode/venv/bin/python3 -c 'import pynvml; pynvml.nvmlDeviceGetTemperatureV'").rc == 0
    else:
        # Debian's nvidia-ml-py 11.525 predates TemperatureV: the older binding worked too.
        assert host.check_output("python3 -c 'import pynvml; print(hasattr(pynvml, \"nvmlDeviceGetTemperatureV\"))'") == "False"
        assert host.package("python3-pynvml").version.startswith("11.")


def test_later_stages_are_blocked_by_the_driver(host):
    if host.backend.name in CONTAINER_NODES:
        pytest.skip("this node runs every stage (validate_continue_after_failure)")
    for name in ("toolkit", "container", "cuda", "plugin"):
        stage = stages(host)[name]
        assert stage["status"] == "blocked"
        assert stage["reason"] == "blocked: the driver stage did not pass"


def test_toolkit_stage_reports_what_is_installed(host):
    if host.backend.name not in CONTAINER_NODES:
        pytest.skip("blocked here")
    toolkit = stages(host)["toolkit"]
    assert toolkit["status"] == "fail"
    runc = host.check_output("/usr/bin/runc --version | head -n1").split()[-1]
    assert toolkit["details"]["binaries"] == {"/usr/bin/runc": runc, "/usr/bin/nvidia-ctk": None}
    # Only the missing toolkit fails it: containerd has the runtime (registered in prepare). Without the
    # container_toolkit role in this play, the stage read the four packages itself (toolkit_state).
    assert toolkit["reason"] == (
        "/usr/bin/nvidia-ctk is not installed (install the NVIDIA container toolkit: container_toolkit role); toolkit packages"
        " not installed: libnvidia-container-tools, libnvidia-container1, nvidia-container-toolkit, nvidia-container-toolkit-base"
        " (the container_toolkit role installs them)")
    assert toolkit["details"]["toolkit"]["packages"] == dict.fromkeys(
        ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"])


def test_toolkit_stage_asked_containerd_runtime_and_containerd_itself(host):
    if host.backend.name not in CONTAINER_NODES:
        pytest.skip("blocked here")
    details = stages(host)["toolkit"]["details"]
    assert details["containerd_runtime_configured"] is True
    assert details["containerd_version"] == host.check_output("containerd --version").split()[2].split("~")[0]
    # containerd_runtime read `containerd config dump`: the runtime is in the effective configuration.
    assert details["effective_runtime"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    dump = host.check_output("containerd config dump")
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in dump


def test_container_stage_really_ran_a_container(host):
    if host.backend.name not in CONTAINER_NODES:
        pytest.skip("blocked here")
    container = stages(host)["container"]
    assert container["status"] == "fail"
    # runc started the container from the imported image; nothing injected nvidia-smi.
    assert 'exec: "nvidia-smi": executable file not found' in container["reason"]
    assert "the runtime did not inject the driver's nvidia-smi" in container["reason"]
    namespace = "ctr --namespace gpunode-validate"
    images = host.check_output(namespace + " images ls --quiet").splitlines()
    assert "gpunode.local/validate/busybox:1" in images
    assert host.check_output(namespace + " containers ls --quiet") == "", "--rm leaves no container behind"


def test_cuda_stage_says_no_gpu_and_proves_its_image_needs_the_runtime(host):
    if host.backend.name not in CONTAINER_NODES:
        pytest.skip("blocked here")
    cuda = stages(host)["cuda"]
    assert cuda["status"] == "fail"
    # On the host: no GPU on the PCI bus, read before anything is loaded (no traceback, no CUDA call).
    assert cuda["reason"].startswith("no NVIDIA GPU on the PCI bus: there is nothing to run CUDA on")
    # In the container: the image made on the node from the venv's Python and cuda-bindings started, the
    # binding imported and looked for libcuda.so.1, which runc (standing in for the NVIDIA runtime) did not inject.
    assert "libcuda.so.1 is not in the container: the runtime (/usr/bin/runc) did not inject the driver's CUDA library" in cuda["reason"]
    assert cuda["details"]["container"] == {"gpus": [], "libcuda": None, "error": "LIBRARY_NOT_FOUND"}
    image = cuda["details"]["image"]
    assert image.startswith("gpunode.local/gpunode/cuda-workload:")
    assert image in host.check_output("ctr --namespace gpunode-validate images ls --quiet").splitlines()
    # The image carries no driver library: the runtime must bring them.
    rootfs = host.check_output("mktemp -d")
    try:
        host.check_output("ctr --namespace gpunode-validate images mount %s %s" % (image, rootfs))
        listing = host.check_output("find %s -name 'lib*.so*' -printf '%%f\\n'" % rootfs)
        assert "libc.so.6" in listing and not [n for n in listing.splitlines() if n.startswith(("libcuda", "libnvidia"))]
        assert host.file(rootfs + "/gpunode/cuda_workload.py").exists
    finally:
        host.run("ctr --namespace gpunode-validate images unmount %s" % rootfs)


def test_plugin_stage_skipped_without_kubeconfig(host):
    if host.backend.name not in CONTAINER_NODES:
        pytest.skip("blocked here")
    plugin = stages(host)["plugin"]
    assert plugin["status"] == "skip"
    assert plugin["reason"] == "no kubeconfig given (validate_kubeconfig) and no cluster applied in this run: node capacity not checked"


def test_validate_changed_nothing_on_the_node(host):
    # validate only reads: the toolkit it found missing is still missing, containerd's files are as prepared.
    assert not host.file("/usr/bin/nvidia-ctk").exists
    if host.backend.name in CONTAINER_NODES:
        now = host.check_output("find /etc/containerd -type f | sort | xargs sha256sum")
        assert now == host.file("/var/tmp/containerd-config.sha256").content_string.strip(), "same files, same contents (no new backup)"
    else:
        assert not host.file("/etc/containerd").exists
