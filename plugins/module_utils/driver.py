# -*- coding: utf-8 -*-
# Copyright: gpunode.nvidia contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the state of an installed NVIDIA driver: DKMS, the kernel module files,
GPU users, the NVML Python, MOK enrolment and nvidia-smi (packages: packages.py).

Like host.py, readers take ``root`` (for tests) and commands go through
``run``, a callable (argv) -> (rc, stdout, stderr).
"""

from __future__ import absolute_import, division, print_function

import glob
import os
import re

from ansible_collections.gpunode.nvidia.plugins.module_utils.sysfs import _path, read_text

# The main NVIDIA kernel module under any of its packaged names: nvidia.ko
# (upstream, Ubuntu, EL), nvidia-current.ko / nvidia-current-open.ko (Debian),
# nvidia-tesla-535.ko (Debian's Tesla branches). The helpers (-uvm, -modeset,
# -drm, -peermem) are not the module that carries the driver version we check.
_MAIN_MODULE_RE = re.compile(r"^nvidia(-current(-open)?|-tesla-\d+(-open)?)?\.ko(\.xz|\.zst|\.gz)?$")
# dkms 3: "nvidia-current/535.261.03, 6.1.0-50-amd64, x86_64: installed"
#         "nvidia-current/535.261.03: added"
# dkms 2: "nvidia, 470.57.02, 5.4.0-80-generic, x86_64: installed"
_DKMS3_RE = re.compile(r"^(?P<module>[^/,\s]+)/(?P<version>[^,:\s]+)(?:, (?P<kernel>[^,]+), (?P<arch>[^:]+))?: (?P<state>.+)$")
_DKMS2_RE = re.compile(r"^(?P<module>[^,\s]+), (?P<version>[^,\s]+)(?:, (?P<kernel>[^,]+), (?P<arch>[^:]+))?: (?P<state>.+)$")
# Where DKMS and packages put kernel modules under /lib/modules/<kernel>/: DKMS
# (updates/dkms on Debian/Ubuntu, extra on EL), Ubuntu's precompiled packages
# (kernel/nvidia-<branch>srv[-open]), the .run installer (kernel/drivers/video, video).
MODULE_DIRS = ("updates/dkms", "updates", "extra", "extra/nvidia", "kernel/nvidia*", "kernel/drivers/video", "video")


def parse_dkms_status(text):
    """`dkms status` lines as dicts: module, version, kernel, arch, state."""
    entries = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        match = _DKMS3_RE.match(line) or _DKMS2_RE.match(line)
        if not match:
            continue
        entry = match.groupdict()
        # "installed (WARNING! Diff between built and installed module!)" -> "installed"
        entry["state"] = entry["state"].split(" ", 1)[0].strip()
        entry["detail"] = line
        entries.append(entry)
    return entries


def parse_modinfo(text):
    """`modinfo FILE` output as a dict of its single-line fields (lower-case keys)."""
    info = {}
    for line in (text or "").splitlines():
        if not line or line[0].isspace() or ":" not in line:
            continue  # signature continuation lines
        key, value = line.split(":", 1)
        key = key.strip().lower()
        if key not in info:  # repeated keys (alias, parm) keep the first
            info[key] = value.strip()
    return info


def main_module_files(kernel, root="/"):
    """Paths (relative to ``root``, with a leading /) of the main NVIDIA module for ``kernel``."""
    found = []
    base = _path(root, "lib/modules", kernel)
    for sub in MODULE_DIRS:
        for directory in sorted(glob.glob(os.path.join(base, sub))):
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                path = "/" + os.path.relpath(os.path.join(directory, name), root)
                if _MAIN_MODULE_RE.match(name) and path not in found:
                    found.append(path)
    return found


def kernel_modules(kernel, run, root="/"):
    """The main NVIDIA module files for ``kernel`` with version, vermagic and signer."""
    modules = []
    for path in main_module_files(kernel, root):
        full = _path(root, path)
        rc, out, _err = run(["modinfo", full])
        info = parse_modinfo(out) if rc == 0 else {}
        vermagic = info.get("vermagic") or ""
        stat = os.stat(full)
        modules.append(
            {
                "path": path,
                "version": info.get("version"),
                "vermagic": vermagic or None,
                "built_for": vermagic.split()[0] if vermagic else None,
                "signer": info.get("signer"),
                "sig_key": info.get("sig_key"),
                "license": info.get("license"),
                "mtime": int(stat.st_mtime),
                "inode": stat.st_ino,
            }
        )
    return modules


def _unit_of(pid, root):
    """The systemd unit a process runs in, from its cgroup path, or None."""
    text = read_text(_path(root, "proc", str(pid), "cgroup")) or ""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope")):
                return part
    return None


def gpu_processes(root="/", own_pid=None):
    """Processes with a /dev/nvidia* device open: pid, comm, cmdline, unit, devices.

    Reads /proc/<pid>/fd links, so it works without the driver's tools and sees
    every user (CUDA jobs, persistenced, fabric manager, DCGM, Xorg).
    """
    proc = _path(root, "proc")
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return []
    users = []
    for pid in pids:
        if pid == own_pid:
            continue
        fd_dir = os.path.join(proc, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        devices = set()
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("/dev/nvidia"):
                devices.add(target)
        if not devices:
            continue
        cmdline = (read_text(os.path.join(proc, str(pid), "cmdline")) or "").replace("\x00", " ").strip()
        users.append(
            {
                "pid": pid,
                "comm": read_text(os.path.join(proc, str(pid), "comm")),
                "cmdline": cmdline,
                "unit": _unit_of(pid, root),
                "devices": sorted(devices),
            }
        )
    return users


# Run by the NVML interpreter, one line each (works on 3.6 too): its Python
# version; the installed cuda-bindings, read from the cuda_bindings-<version>.dist-info
# beside the cuda/bindings package (not imported: only the version matters here);
# whether pynvml imports, and the nvidia-ml-py version from its metadata directory.
_NVML_PROBE = (
    "import glob, os, re, sys\n"
    "print('PY %d.%d.%d' % sys.version_info[:3])\n"
    "cb = ''\n"
    "for top in sys.path:\n"
    "    if top and os.path.isdir(os.path.join(top, 'cuda', 'bindings')):\n"
    "        for meta in sorted(glob.glob(os.path.join(top, 'cuda_bindings-*.dist-info'))):\n"
    "            m = re.match(r'.*cuda_bindings-([0-9][^-]*)\\.dist-info$', meta)\n"
    "            cb = m.group(1) if m else cb\n"
    "        break\n"
    "print('CB ' + cb)\n"
    "try:\n"
    "    import pynvml\n"
    "except Exception as exc:\n"
    "    print('ERR ' + type(exc).__name__); sys.exit(0)\n"
    "base = os.path.dirname(pynvml.__file__)\n"
    "for meta in sorted(glob.glob(os.path.join(base, '*ml_py*-*-info'))):\n"
    "    m = re.match(r'.*ml_py-([0-9][^-]*)\\.(dist|egg)-info$', meta)\n"
    "    if m:\n"
    "        print('OK ' + m.group(1)); sys.exit(0)\n"
    "print('OK ')\n"
)


def parse_nvml_probe(out):
    """The probe's lines as {python, cuda_bindings, pynvml, version}."""
    result = {"pynvml": False, "version": None, "cuda_bindings": None, "python": None}
    for line in out.splitlines():
        key, _sep, value = line.strip().partition(" ")
        value = value.strip() or None
        if key == "PY":
            result["python"] = value
        elif key == "CB":
            result["cuda_bindings"] = value
        elif key == "OK":
            result["pynvml"], result["version"] = True, value
    return result


def nvml_python(python, run, base=None):
    """Whether ``python`` can import pynvml, its nvidia-ml-py and cuda-bindings
    versions and its Python version. While ``python`` does not exist (a venv not
    made yet), ``python`` is the version of ``base``, the interpreter it would be
    made from (None when that does not run either)."""
    result = {"path": python, "exists": os.path.exists(python), "pynvml": False, "version": None, "cuda_bindings": None, "python": None}
    if not result["exists"]:
        if base and os.path.exists(base):
            rc, out, _err = run([base, "-c", _NVML_PROBE])
            result["python"] = parse_nvml_probe(out)["python"] if rc == 0 else None
        return result
    rc, out, _err = run([python, "-c", _NVML_PROBE])
    if rc == 0:
        result.update(parse_nvml_probe(out))
    return result


def mok_enrolled(certificate, run):
    """Whether a MOK certificate is enrolled (mokutil --test-key); None when unknown."""
    rc, out, err = run(["mokutil", "--test-key", certificate])
    text = (out + err).lower()
    if "is already enrolled" in text:
        return True
    if "is not enrolled" in text:
        return False
    return None


def nvidia_smi_query(run):
    """GPUs as nvidia-smi reports them (name, driver version), or the error it printed."""
    rc, out, err = run(["nvidia-smi", "--query-gpu=index,name,driver_version", "--format=csv,noheader"])
    if rc == 127:
        return {"rc": rc, "gpus": [], "error": "nvidia-smi not found"}
    gpus = []
    if rc == 0:
        for line in out.splitlines():
            fields = [f.strip() for f in line.split(",")]
            if len(fields) == 3:
                gpus.append({"index": fields[0], "name": fields[1], "driver_version": fields[2]})
    lines = (out + err).strip().splitlines()
    return {"rc": rc, "gpus": gpus, "error": None if rc == 0 else (lines[0] if lines else "exit %d" % rc)}
