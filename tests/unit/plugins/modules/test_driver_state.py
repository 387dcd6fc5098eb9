"""driver_state and module_utils/driver.py: parsers over outputs recorded on lab
nodes after a real DKMS build, GPU users over a /proc tree, the NVML probe run
for real with this venv's Python, and main() for real on this machine."""

import importlib.metadata
import hashlib
import os
import sys

import pytest

from ansible_collections.gpunode.nvidia.plugins.module_utils import driver
from ansible_collections.gpunode.nvidia.plugins.modules import driver_state

from ... import hosts
from ...driver_data import FIXTURES
from ...utils import FakeRun, run_module

KERNEL = "6.1.0-56-amd64"


def recorded(name):
    with open(os.path.join(FIXTURES, "commands", name)) as handle:
        return handle.read()


def test_dkms_status_lines():
    entries = driver.parse_dkms_status(recorded("dkms-status.txt"))
    assert entries == [{"module": "nvidia-current", "version": "535.261.03", "kernel": KERNEL, "arch": "x86_64", "state": "installed",
                        "detail": "nvidia-current/535.261.03, %s, x86_64: installed" % KERNEL}]
    older = driver.parse_dkms_status(
        "nvidia, 470.57.02, 5.4.0-80-generic, x86_64: installed (WARNING! Diff between built and installed module!)\n"
        "nvidia-current/550.163.01: added\nError! something\n"
    )
    assert [(e["module"], e["version"], e["kernel"], e["state"]) for e in older] == [
        ("nvidia", "470.57.02", "5.4.0-80-generic", "installed"),
        ("nvidia-current", "550.163.01", None, "added"),
    ]


def test_modinfo_of_a_dkms_built_module():
    info = driver.parse_modinfo(recorded("modinfo-nvidia-current.txt"))
    assert info["version"] == "535.261.03"
    assert info["vermagic"].split()[0] == KERNEL
    assert info["name"] == "nvidia" and info["license"] == "NVIDIA"
    # Debian's dkms signs with its own generated key, which no firmware trusts by itself.
    assert info["signer"] == "DKMS module signing key"


def test_main_module_files_under_every_packaged_name(tmp_path):
    for rel in ("updates/dkms/nvidia-current.ko", "updates/dkms/nvidia-current-uvm.ko", "updates/dkms/nvidia-current-modeset.ko",
                "kernel/nvidia-580srv-open/nvidia.ko.zst", "kernel/nvidia-580srv-open/nvidia-peermem.ko.zst", "extra/nvidia-tesla-535.ko.xz"):
        hosts.write(tmp_path, "lib/modules/%s/%s" % (KERNEL, rel))
    assert driver.main_module_files(KERNEL, str(tmp_path)) == [
        "/lib/modules/%s/updates/dkms/nvidia-current.ko" % KERNEL,
        "/lib/modules/%s/extra/nvidia-tesla-535.ko.xz" % KERNEL,
        "/lib/modules/%s/kernel/nvidia-580srv-open/nvidia.ko.zst" % KERNEL,
    ]
    assert driver.main_module_files("6.18.44-fc-v657", str(tmp_path)) == []


def test_kernel_modules_reads_modinfo(tmp_path):
    path = hosts.write(tmp_path, "lib/modules/%s/updates/dkms/nvidia-current.ko" % KERNEL)
    run = FakeRun({"modinfo": (0, recorded("modinfo-nvidia-current.txt"), "")})
    (module,) = driver.kernel_modules(KERNEL, run, str(tmp_path))
    assert run.calls == [["modinfo", path]]
    assert module["path"] == "/lib/modules/%s/updates/dkms/nvidia-current.ko" % KERNEL
    assert (module["version"], module["built_for"], module["signer"]) == ("535.261.03", KERNEL, "DKMS module signing key")
    assert module["inode"] == os.stat(path).st_ino and module["mtime"] == int(os.stat(path).st_mtime)


def proc_tree(tmp_path):
    """A /proc with a CUDA job, a GPU service, an unrelated process and this module."""
    def process(pid, comm, cgroup, targets):
        hosts.write(tmp_path, "proc/%d/comm" % pid, comm + "\n")
        hosts.write(tmp_path, "proc/%d/cmdline" % pid, comm + "\x00--flag\x00")
        hosts.write(tmp_path, "proc/%d/cgroup" % pid, cgroup)
        os.makedirs(os.path.join(str(tmp_path), "proc/%d/fd" % pid))
        for fd, target in enumerate(targets):
            os.symlink(target, os.path.join(str(tmp_path), "proc/%d/fd/%d" % (pid, fd)))

    process(4242, "python3", "0::/user.slice/user-0.slice/session-3.scope\n", ["/dev/pts/0", "/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"])
    process(77, "nv-hostengine", "0::/system.slice/nvidia-dcgm.service\n", ["/dev/nvidiactl", "socket:[123]"])
    process(12, "sshd", "0::/system.slice/ssh.service\n", ["/dev/null"])
    process(99, "ansible", "0::/system.slice/x.service\n", ["/dev/nvidia0"])
    hosts.write(tmp_path, "proc/meminfo", "")
    return str(tmp_path)


def test_gpu_processes_with_their_units(tmp_path):
    users = driver.gpu_processes(proc_tree(tmp_path), own_pid=99)
    assert users == [
        {"pid": 77, "comm": "nv-hostengine", "cmdline": "nv-hostengine --flag", "unit": "nvidia-dcgm.service", "devices": ["/dev/nvidiactl"]},
        {"pid": 4242, "comm": "python3", "cmdline": "python3 --flag", "unit": "session-3.scope",
         "devices": ["/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"]},
    ]


def _run(argv, env=None):
    import subprocess

    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def test_nvml_python_probe_runs_for_real(tmp_path):
    # This venv has nvidia-ml-py (requirements/controller.txt pins 13.615.71) and, in the main venv, cuda-bindings
    # (the controller matrix's legs have none): the probe's dist-info reading must agree with importlib.metadata's.
    python = "%d.%d.%d" % sys.version_info[:3]
    try:
        bindings = importlib.metadata.version("cuda-bindings")
    except importlib.metadata.PackageNotFoundError:
        bindings = None
    result = driver.nvml_python(sys.executable, _run)
    assert result == {"path": sys.executable, "exists": True, "pynvml": True, "version": "13.615.71", "cuda_bindings": bindings, "python": python}
    bare = driver.nvml_python(sys.executable, lambda argv: _run([argv[0], "-I", "-S"] + argv[1:]))  # no site-packages
    assert bare["exists"] is True and bare["pynvml"] is False and bare["python"] == python
    missing = str(tmp_path / "python3")
    assert driver.nvml_python(missing, _run) == {"path": missing, "exists": False, "pynvml": False, "version": None, "cuda_bindings": None, "python": None}
    # A venv not made yet: the Python it would be made from.
    assert driver.nvml_python(missing, _run, base=sys.executable)["python"] == python


def test_nvml_probe_reads_cuda_bindings_beside_its_package(tmp_path):
    # cuda-bindings laid out as its wheel installs it: cuda/bindings/ and the dist-info beside cuda/.
    site = tmp_path / "site"
    (site / "cuda" / "bindings").mkdir(parents=True)
    (site / "cuda" / "bindings" / "__init__.py").write_text("raise ImportError('the probe must not import it')\n")
    (site / "cuda_bindings-12.9.4.dist-info").mkdir()
    (site / "cuda_pathfinder-1.3.3.dist-info").mkdir()
    # Elsewhere on the path, a dist-info without the package is not what is installed.
    (tmp_path / "stray" / "cuda_bindings-13.0.0.dist-info").mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "stray"), str(site)]))
    result = driver.nvml_python(sys.executable, lambda argv: _run(argv, env))
    assert result["cuda_bindings"] == "12.9.4" and result["version"] == "13.615.71"


@pytest.mark.parametrize(
    "out, expected",
    [
        ("PY 3.11.2\nCB 12.9.4\nOK 13.615.71\n", {"python": "3.11.2", "cuda_bindings": "12.9.4", "pynvml": True, "version": "13.615.71"}),
        ("PY 3.13.5\nCB \nOK \n", {"python": "3.13.5", "cuda_bindings": None, "pynvml": True, "version": None}),
        ("PY 3.6.8\nCB \nERR ModuleNotFoundError\n", {"python": "3.6.8", "cuda_bindings": None, "pynvml": False, "version": None}),
        ("", {"python": None, "cuda_bindings": None, "pynvml": False, "version": None}),
    ],
)
def test_nvml_probe_output(out, expected):
    assert driver.parse_nvml_probe(out) == expected


@pytest.mark.parametrize(
    "out, expected",
    [("MOK.der is already enrolled\n", True), ("MOK.der is not enrolled\n", False), ("EFI variables are not supported on this system\n", None)],
)
def test_mok_enrolment(out, expected):
    assert driver.mok_enrolled("/root/MOK.der", FakeRun({"mokutil": (0, out, "")})) is expected


def test_nvidia_smi_without_and_with_a_driver():
    failed = driver.nvidia_smi_query(FakeRun({"nvidia-smi": (9, recorded("nvidia-smi-no-driver.txt"), "")}))
    assert failed == {"rc": 9, "gpus": [], "error": recorded("nvidia-smi-no-driver.txt").strip().splitlines()[0]}
    # The H100 machine's reading (notes/gpu-machine.md), in nvidia-smi's csv format.
    seen = driver.nvidia_smi_query(FakeRun({"nvidia-smi": (0, "0, NVIDIA H100 80GB HBM3, 580.159.04\n", "")}))
    assert seen["gpus"] == [{"index": "0", "name": "NVIDIA H100 80GB HBM3", "driver_version": "580.159.04"}]
    assert driver.nvidia_smi_query(FakeRun())["error"] == "nvidia-smi not found"


def test_gather_on_a_converged_lab_node_tree(tmp_path):
    root = tmp_path
    hosts.write(root, "etc/os-release", 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    hosts.write(root, "lib/modules/%s/updates/dkms/nvidia-current.ko" % KERNEL)
    hosts.write(root, "etc/modprobe.d/gpunode-blacklist-nouveau.conf", "blacklist nouveau\n")
    os.chmod(os.path.join(str(root), "etc/modprobe.d/gpunode-blacklist-nouveau.conf"), 0o640)
    os.makedirs(os.path.join(str(root), "lib/modules/%s/build" % KERNEL))
    os.makedirs(os.path.join(str(root), "proc"))
    run = FakeRun({
        "dpkg-query": (1, recorded("dpkg-query-driver.txt"), ""),
        "dkms": (0, recorded("dkms-status.txt"), ""),
        "modinfo": (0, recorded("modinfo-nvidia-current.txt"), ""),
        "systemctl": (0, "Id=nvidia-persistenced.service\nActiveState=inactive\nUnitFileState=enabled\n", ""),
        "apt-cache": lambda argv: (0, "linux-headers-amd64\n  Depends: linux-headers-%s\n" % KERNEL, "") if argv[1] == "depends"
        else (0, "linux-headers-%s:\n  Installed: 6.1.192-2\n  Candidate: 6.1.192-2\n" % KERNEL, ""),
    })
    params = {"packages": ["nvidia-*"], "available": ["linux-headers-%s" % KERNEL], "kernels": [KERNEL], "dkms": True, "processes": True,
              "services": ["nvidia-persistenced"], "files": ["/boot/initrd.img-%s" % KERNEL], "commands": ["nvidia-smi", "mokutil"],
              "checksums": ["/etc/modprobe.d/gpunode-blacklist-nouveau.conf", "/etc/apt/preferences.d/gpunode-nvidia-driver", "/lib/modules"],
              "mok_certificate": None, "nvml_python": None, "nvidia_smi": False, "kernel_meta": "linux-headers-amd64"}
    paths = {"dkms": "/usr/sbin/dkms", "nvidia-smi": "/usr/bin/nvidia-smi"}
    state = driver_state.gather(str(root), params, run, paths.get, lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest())
    assert state["family"] == "Debian" and state["packages"]["nvidia-kernel-dkms"] == "535.261.03-1"
    assert state["dkms"][0]["state"] == "installed" and state["headers"] == {KERNEL: True}
    assert state["modules"][KERNEL][0]["built_for"] == KERNEL
    assert state["available"] == {"linux-headers-%s" % KERNEL: True}
    assert state["services"]["nvidia-persistenced"] == {"active": "inactive", "enabled": "enabled"}
    assert state["files"] == {"/boot/initrd.img-%s" % KERNEL: False}
    assert state["commands"] == {"nvidia-smi": "/usr/bin/nvidia-smi", "mokutil": None}
    # What the converged check compares; a missing file and a directory are both "not the file".
    owner = os.stat(str(root)).st_uid, os.stat(str(root)).st_gid
    assert state["checksums"] == {
        "/etc/modprobe.d/gpunode-blacklist-nouveau.conf": {"sha256": hashlib.sha256(b"blacklist nouveau\n").hexdigest(), "mode": "0640",
                                                           "uid": owner[0], "gid": owner[1]},
        "/etc/apt/preferences.d/gpunode-nvidia-driver": None, "/lib/modules": None}
    assert state["loaded"] is None and state["processes"] == [] and state["mok"] is None
    assert state["kernel_meta"] == {"package": "linux-headers-amd64", "kernel": KERNEL}


def test_main_runs_read_only_on_this_machine(capsys):
    failed, result = run_module(driver_state.main, {"packages": ["python3*"], "kernels": [os.uname().release], "_ansible_check_mode": True}, capsys)
    assert not failed and result["changed"] is False
    assert result["family"] in ("Debian", "RedHat")
    assert result["loaded"] is None  # no GPU on the lab machine
    assert isinstance(result["processes"], list)
