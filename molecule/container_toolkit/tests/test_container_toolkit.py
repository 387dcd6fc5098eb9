"""Verify the container_toolkit role (with the containerd role) on real Debian lab nodes
with containerd 1.6, 1.7 and 2.1, after side_effect moved the pin to 1.20.0-1.

The packages are the lab mirror's test doubles of NVIDIA's (lab/mirror.sh): real names,
versions, dependencies and file paths, stand-in programs. apt's signature checks are real.
Dumps and config.toml are read with Python's tomllib, not the collection's TOML code.
"""

import os
import tomllib

import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = [
    "podman://" + name for name in testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("gpu_nodes")
]
PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"]
VERSION = "1.20.0-1"
SOURCES = "/etc/apt/sources.list.d/gpunode-nvidia-container-toolkit.sources"
KEYRING = "/etc/apt/keyrings/gpunode-nvidia-container-toolkit.gpg"
CONFIG = "/etc/nvidia-container-runtime/config.toml"


def dump(host):
    return tomllib.loads(host.check_output("containerd config dump"))


def cri_runtimes(data):
    plugins = data["plugins"]
    cri = plugins.get("io.containerd.cri.v1.runtime") or plugins["io.containerd.grpc.v1.cri"]
    return cri, cri["containerd"]["runtimes"]


def test_all_four_packages_moved_together_and_are_held(host):
    out = host.check_output("dpkg-query -W -f '${Package} ${Version} ${db:Status-Want}\\n' " + " ".join(PACKAGES))
    assert sorted(out.splitlines()) == sorted("%s %s hold" % (p, VERSION) for p in PACKAGES)
    assert host.check_output("nvidia-ctk --version").splitlines()[0] == "NVIDIA Container Toolkit CLI version 1.20.0"
    assert "cli-version: 1.20.0" in host.check_output("nvidia-container-cli --version")


def test_the_repository_is_signature_checked_never_trusted(host):
    sources = host.file(SOURCES).content_string
    assert "Signed-By: %s" % KEYRING in sources and "trusted" not in sources.lower()
    keyring = host.file(KEYRING)
    assert keyring.mode == 0o644 and keyring.user == "root"
    # Dearmored: binary OpenPGP (a public-key packet), not ASCII armor.
    first = host.check_output("head -c 1 %s | od -An -tx1" % KEYRING).strip()
    assert first in ("99", "98", "c6"), first


def test_config_toml_has_the_settings_and_keeps_the_rest(host):
    text = host.file(CONFIG).content_string
    config = tomllib.loads(text)
    assert config["nvidia-container-runtime"]["mode"] == "cdi"
    assert config["features"]["disable-cuda-compat-lib-hook"] is True
    # What the package wrote stays: its settings and its commented-out defaults.
    assert config["nvidia-container-cli"]["ldconfig"] == "@/sbin/ldconfig"
    assert "#no-cgroups = false" in text
    backups = host.run("ls %s.*~" % CONFIG).stdout.split()
    assert backups, "no backup of config.toml"


def test_containerd_loads_the_runtime_with_runc_options(host):
    data = dump(host)
    cri, runtimes = cri_runtimes(data)
    nvidia = runtimes["nvidia"]
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert nvidia["options"]["SystemdCgroup"] is True
    assert host.file("/usr/bin/nvidia-container-runtime").is_file


def test_cdi_is_on_where_containerd_has_it(host):
    version = host.check_output("containerd --version").split()[2].lstrip("v")
    cri, _runtimes = cri_runtimes(dump(host))
    if version.startswith("1.6"):
        # containerd 1.6 has no CDI: the containerd role left it off (with a warning).
        assert "enable_cdi" not in cri
    else:
        assert cri["enable_cdi"] is True


def test_cdi_refresh_units_enabled_and_node_not_degraded(host):
    for unit in ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"):
        assert host.service(unit).is_enabled, unit
    # No driver here: the refresh unit skips itself instead of failing the node.
    assert host.run("systemctl is-system-running").stdout.strip() == "running"
