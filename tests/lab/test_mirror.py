"""The lab's package mirror (lab/mirror.sh): apt on a lab node against it, with apt's real signature checks.

What the mirror serves are test doubles of NVIDIA's container toolkit packages
(nvidia-container-toolkit, nvidia-container-toolkit-base, libnvidia-container-tools,
libnvidia-container1, 1.19.0-1 and 1.20.0-1): the real names, versions, dependencies
and file paths, with stand-in programs that answer --version and fail `nvidia-ctk cdi
generate` the way the real one fails without a driver. NVIDIA's repository is not
reachable from the lab; the repository is signed with a key made when the mirror
image was built, and a second tree holds the same packages signed with another key.
These tests drive apt by hand on lab nodes (Debian 12, whose apt verifies with gpgv, and
Debian 13, with sqv), not through the toolkit role.
"""

import base64
import os
import uuid

import pytest

from .conftest import IMAGE_PREFIX, lab, podman

PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
            "libnvidia-container1"]
KEYRING = "/etc/apt/keyrings/nvidia-container-toolkit-keyring.gpg"
LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
# Only the mirror's list: the Debian lists baked into the image stay as they are.
APT_MIRROR_ONLY = ["-o", "Dir::Etc::sourcelist=" + LIST, "-o", "Dir::Etc::sourceparts=-",
                   "-o", "APT::Get::List-Cleanup=0"]


@pytest.fixture(scope="module")
def mirror_lab(tmp_path_factory):
    if podman("image", "exists", IMAGE_PREFIX + "-mirror", check=False).returncode != 0:
        pytest.fail("mirror image missing: run lab/lab.sh build")
    env = {"LAB_NAME_PREFIX": "lab-mirror-%s" % uuid.uuid4().hex[:6],
           "LAB_STATE": str(tmp_path_factory.mktemp("mirror-lab"))}
    try:
        # Debian 12's apt checks signatures with gpgv, Debian 13's with sqv: one node each.
        lab("up", "bookworm:1,trixie:1", env=env)
        yield env
    finally:
        lab("down", env=env, check=False)


def sh(node, script):
    """bash -c SCRIPT in a node, not checked: the caller asserts on rc and output."""
    return podman("exec", node, "bash", "-c", script, check=False)


def dearmor(armored):
    """gpg --dearmor, which lab nodes lack: the base64 body of the armor, without its CRC line."""
    lines = armored.strip().splitlines()
    body = lines[lines.index("") + 1:-1]
    return base64.b64decode("".join(line for line in body if not line.startswith("=")))


def use_repo(node, url, key_url, tmp_path):
    """The mirror as NVIDIA's instructions set a repository up: dearmored key, signed-by, flat repo."""
    key = sh(node, "python3 -c 'import sys, urllib.request; "
                   "sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' " + key_url)
    assert key.returncode == 0, key.stderr
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(dearmor(key.stdout))
    sh(node, "mkdir -p /etc/apt/keyrings")
    podman("cp", str(keyring), node + ":" + KEYRING)
    line = "deb [signed-by=%s] %s /" % (KEYRING, url)
    assert sh(node, "echo '%s' >%s" % (line, LIST)).returncode == 0


def fingerprint(mirror_lab, tree):
    """The fingerprint of the key a tree's gpgkey holds, read with gpg on the mirror."""
    base = "/srv/gpunode-mirror/%slibnvidia-container/gpgkey" % ("other-key/" if tree == "other-key" else "")
    out = podman("exec", mirror_lab["LAB_NAME_PREFIX"] + "-mirror", "gpg", "--show-keys", "--with-colons", base).stdout
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")][0]


def assert_refused(node, mirror_lab, tmp_path):
    """The good key trusted, the other-key tree served: apt's own refusal, and nothing installed."""
    url = lab("mirror-url", env=mirror_lab).stdout.strip()
    use_repo(node, lab("mirror-url", "other-key", env=mirror_lab).stdout.strip(),
             url.replace("/stable/deb/$(ARCH)", "/gpgkey"), tmp_path)
    update = apt(node, "update")
    out = update.stdout + update.stderr
    assert update.returncode == 100, out
    other = fingerprint(mirror_lab, "other-key")
    if "sqv" in out:  # Debian 13
        assert "OpenPGP signature verification failed" in out and "Missing key %s" % other in out, out
    else:  # gpgv
        assert "The following signatures couldn't be verified because the public key is not available" in out
        assert "NO_PUBKEY %s" % other[-16:] in out, out
    assert "is not signed" in out, out
    install = apt(node, "install", "-y", "nvidia-container-toolkit")
    assert install.returncode == 100 and "Unable to locate package nvidia-container-toolkit" in install.stderr
    assert installed(node) == {}


def apt(node, *args):
    return sh(node, "DEBIAN_FRONTEND=noninteractive apt-get -q " + " ".join(APT_MIRROR_ONLY + list(args)))


def installed(node):
    out = sh(node, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n' " + " ".join(PACKAGES))
    return {p: v for p, v, status in (line.split() for line in out.stdout.splitlines()) if status == "installed"}


def test_vars_point_the_toolkit_role_at_the_mirror(mirror_lab):
    prefix = mirror_lab["LAB_NAME_PREFIX"]
    url = lab("mirror-url", env=mirror_lab).stdout.strip()
    other = lab("mirror-url", "other-key", env=mirror_lab).stdout.strip()
    assert url.startswith("http://") and url.endswith("/libnvidia-container/stable/deb/$(ARCH)")
    assert other == url.replace("/libnvidia-container/", "/other-key/libnvidia-container/")
    fpr = fingerprint(mirror_lab, "good")
    assert len(fpr) == 40 and fpr != fingerprint(mirror_lab, "other-key")
    lines = lab("vars", env=mirror_lab).stdout.splitlines()
    assert lines[-4:] == ["container_toolkit_source: mirror",
                          "container_toolkit_mirror_url: " + url,
                          "container_toolkit_mirror_key_url: " + url.replace("/stable/deb/$(ARCH)", "/gpgkey"),
                          'container_toolkit_key_fingerprint: "%s"' % fpr]
    with open(lab("inventory", env=mirror_lab).stdout.strip()) as handle:
        inventory = handle.read()
    assert "    lab_mirror:\n" in inventory and inventory.count(prefix + "-mirror:") == 1
    assert inventory.split("gpu_nodes:")[1].count(prefix + "-mirror") == 0
    # Without a running mirror, or with LAB_TOOLKIT_SOURCE=nvidia: none of the toolkit's variables.
    alone = {"LAB_NAME_PREFIX": "lab-mirror-alone-%s" % uuid.uuid4().hex[:6]}
    assert "container_toolkit_" not in lab("vars", env=alone).stdout
    assert "container_toolkit_" not in lab("vars", env=dict(mirror_lab, LAB_TOOLKIT_SOURCE="nvidia")).stdout
    # mirror-up: a lab's mirror alone, for nodes that lab.sh does not start; down removes it.
    try:
        alone_url = lab("mirror-up", env=alone).stdout.strip()
        assert alone_url.endswith("/libnvidia-container/stable/deb/$(ARCH)") and alone_url != url
        assert lab("vars", env=alone).stdout.count("container_toolkit_") == 4
    finally:
        assert "removed 0 node(s) and the mirror" in lab("down", env=alone).stdout


def test_install_and_upgrade_of_the_test_doubles(mirror_lab, tmp_path):
    node = mirror_lab["LAB_NAME_PREFIX"] + "-bookworm-1"
    assert_refused(node, mirror_lab, tmp_path)
    url = lab("mirror-url", env=mirror_lab).stdout.strip()
    use_repo(node, url, url.replace("/stable/deb/$(ARCH)", "/gpgkey"), tmp_path)
    update = apt(node, "update")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "W:" not in update.stdout + update.stderr

    first = apt(node, "install", "-y", *("%s=1.19.0-1" % p for p in PACKAGES))
    assert first.returncode == 0, first.stdout + first.stderr
    assert installed(node) == {p: "1.19.0-1" for p in PACKAGES}
    assert sh(node, "nvidia-ctk --version").stdout.splitlines()[0] == "NVIDIA Container Toolkit CLI version 1.19.0"

    second = apt(node, "install", "-y", *("%s=1.20.0-1" % p for p in PACKAGES))
    assert second.returncode == 0, second.stdout + second.stderr
    assert installed(node) == {p: "1.20.0-1" for p in PACKAGES}
    assert sh(node, "nvidia-ctk --version").stdout.startswith("NVIDIA Container Toolkit CLI version 1.20.0\n")
    cli = sh(node, "nvidia-container-cli --version").stdout.splitlines()
    assert cli[:2] == ["cli-version: 1.20.0", "lib-version: 1.20.0"]
    runtime = sh(node, "nvidia-container-runtime --version")
    assert runtime.returncode == 0 and runtime.stdout.startswith("NVIDIA Container Runtime version 1.20.0\n")
    for hook in ("nvidia-container-runtime-hook", "nvidia-cdi-hook"):
        assert " version 1.20.0\n" in sh(node, hook + " --version").stdout, hook
    # The package's postinst writes the runtime's config, as the real one does.
    assert 'mode = "auto"' in sh(node, "cat /etc/nvidia-container-runtime/config.toml").stdout
    assert "libnvidia-container.so.1 " in sh(node, "ldconfig -p").stdout

    # No driver on a lab node: cdi generate fails the way the real one does, and the
    # refresh units are skipped by their conditions, so the node is not degraded.
    cdi = sh(node, "nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml")
    assert cdi.returncode == 1
    assert "failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND" in cdi.stderr
    assert sh(node, "systemctl is-system-running").stdout.strip() == "running"
    refresh = sh(node, "systemctl show -p ConditionResult -p ActiveState nvidia-cdi-refresh.service").stdout
    assert "ConditionResult=no" in refresh and "ActiveState=inactive" in refresh
    links = sh(node, "nvidia-ctk system create-dev-char-symlinks --create-all")
    assert links.returncode == 0 and sh(node, "ls /dev/char | grep -c nvidia").stdout.strip() == "0"
    assert sh(node, "nvidia-ctk cdi list").returncode == 0
    # With NVML's library but no loaded kernel module: NVML's other verdict.
    sh(node, "touch /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")
    cdi = sh(node, "nvidia-ctk cdi generate")
    assert cdi.returncode == 1 and "failed to initialize NVML: ERROR_DRIVER_NOT_LOADED" in cdi.stderr
    other = sh(node, "nvidia-ctk runtime configure --runtime=containerd")
    assert other.returncode == 2 and "gpunode lab test double: runtime configure not implemented" in other.stderr


def test_a_mirror_signed_with_another_key_is_refused_and_a_local_copy_works(mirror_lab, tmp_path):
    prefix = mirror_lab["LAB_NAME_PREFIX"]
    node = prefix + "-trixie-1"
    assert_refused(node, mirror_lab, tmp_path)

    # The good tree copied into the node: an air-gapped site's local-directory repository.
    podman("cp", prefix + "-mirror:/srv/gpunode-mirror/libnvidia-container", str(tmp_path / "tree"))
    podman("cp", str(tmp_path / "tree"), node + ":/srv/libnvidia-container")
    local = "file:/srv/libnvidia-container/stable/deb/$(ARCH)"
    assert sh(node, "echo 'deb [signed-by=%s] %s /' >%s" % (KEYRING, local, LIST)).returncode == 0
    update = apt(node, "update")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "W:" not in update.stdout + update.stderr
    policy = sh(node, "apt-cache policy nvidia-container-toolkit").stdout
    assert "Candidate: 1.20.0-1" in policy and "1.19.0-1" in policy
    assert os.path.isfile(tmp_path / "tree" / "stable" / "deb" / "amd64" / "InRelease")
