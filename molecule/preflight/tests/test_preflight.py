"""Verify preflight_facts on real lab nodes against what the node itself says."""

import json
import os

import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
# Commands go straight through podman (fast); the module runs through Ansible.
testinfra_hosts = [
    "podman://" + name
    for name in testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("gpu_nodes")
]
_CACHE = {}


def facts(host, **args):
    """gpunode_preflight from the module run on this node by Ansible (cached per args)."""
    name = host.backend.name
    key = (name, json.dumps(args, sort_keys=True))
    if key not in _CACHE:
        node = testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, INVENTORY))
        # Ad-hoc module args are key=value; list options take comma-separated values.
        argstr = " ".join(
            "%s=%s" % (k, ",".join(v) if isinstance(v, list) else v) for k, v in sorted(args.items())
        )
        result = node.ansible("gpunode.nvidia.preflight_facts", argstr, check=False)
        assert "ansible_facts" in result, result
        _CACHE[key] = result["ansible_facts"]["gpunode_preflight"]
    return _CACHE[key]


def test_os_kernel_init_match_the_node(host):
    f = facts(host)
    release = dict(
        line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines() if "=" in line
    )
    assert f["os"]["id"] == release["ID"]
    assert f["os"]["version"] == release["VERSION_ID"].strip('"')
    assert f["os"]["family"] == "Debian"
    assert f["kernel"]["running"] == host.check_output("uname -r")
    assert f["architecture"] == host.check_output("uname -m")
    assert f["init"] == {"pid1": "systemd", "systemd": True}
    assert f["virtualization"]["container"] == host.check_output("systemd-detect-virt --container")


def test_no_gpu_and_no_driver_on_lab_nodes(host):
    f = facts(host)
    assert f["gpus"] == {"count": 0, "devices": []}
    assert f["nvswitches"]["count"] == 0
    assert f["driver"]["loaded"] is None
    assert f["modules"]["nvidia"] is False and f["modules"]["nouveau"] is False


def test_headers_for_the_vm_kernel_are_not_in_debian(host):
    # Lab nodes run the VM's own kernel, which Debian has no headers for.
    f = facts(host)
    assert f["kernel"]["headers_package"] == "linux-headers-" + host.check_output("uname -r")
    assert f["kernel"]["headers_installed"] is False
    assert f["kernel"]["headers_available"] is False


def test_headers_for_a_debian_kernel_are_available(host):
    meta = host.check_output("apt-cache depends linux-headers-amd64 | sed -n 's/.*Depends: linux-headers-//p' | head -n1")
    f = facts(host, kernel_release=meta)
    assert f["kernel"]["target"] == meta
    assert f["kernel"]["headers_available"] is True
    assert f["kernel"]["headers_installed"] is False


def test_packages_services_files_match_the_node(host):
    f = facts(host, packages=["systemd", "libnvidia-ml1"], services=["dbus"], files=["/etc/os-release"])
    assert f["packages"]["systemd"] == host.package("systemd").version
    nvml = host.package("libnvidia-ml1")
    assert f["packages"]["libnvidia-ml1"] == (nvml.version if nvml.is_installed else None)
    assert f["services"]["dbus"]["active"] == host.check_output("systemctl is-active dbus")
    sha = host.check_output("sha256sum /etc/os-release | cut -d' ' -f1")
    assert f["files"]["/etc/os-release"] == sha


def test_nvml_library_version_matches_the_installed_package(host):
    f = facts(host)
    nvml = host.package("libnvidia-ml1")
    if nvml.is_installed:
        # Debian's version is "<driver version>-<revision>".
        assert f["driver"]["nvml_library"]["version"] == nvml.version.split("-")[0]
        assert f["driver"]["nvml_library"]["path"].endswith("/libnvidia-ml.so.1")
    else:
        assert f["driver"]["nvml_library"] is None


def test_the_role_published_its_summary_only_through_facts(host):
    # The role reads and decides; it must not have changed the node's packages.
    assert not host.package("nvidia-kernel-dkms").is_installed
