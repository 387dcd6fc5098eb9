"""What the driver planner tests share: the OS data a test plans for, the plan
over the role's real per-OS data, and a converged lab node's driver_state read."""

from ansible_collections.gpunode.nvidia.plugins.plugin_utils import driver_plan as dp

from ...driver_data import inputs, os_data

HOPPER, BLACKWELL, PASCAL, GH200, AMPERE = "0x2330", "0x2901", "0x1b80", "0x2342", "0x20b0"
DEBIAN, UBUNTU, RHEL = ("debian", "Debian"), ("ubuntu", "Debian"), ("rocky", "RedHat")


def plan(facts, which, **overrides):
    data, family = os_data(*which)
    return dp.plan(inputs(**overrides), data, family, facts)


def family_of(which):
    return os_data(*which)[1]


def converged_state(version="535.261.03-1", held=True):
    names = ["nvidia-kernel-dkms", "nvidia-kernel-support", "nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "nvidia-alternative", "firmware-nvidia-gsp"]
    packages = dict((n, version) for n in names)
    packages.update({"nvidia-persistenced": "535.171.04-1~deb12u1", "nvidia-modprobe": "535.161.07-1~deb12u1",
                     "linux-headers-6.1.0-50-amd64": "6.1.176-1", "python3-venv": "3.11.2-1+b1", "python3-packaging": "23.0-1"})
    return {
        "packages": packages,
        "held": sorted(names + ["nvidia-persistenced"]) if held else [],
        "available": {"linux-headers-6.1.0-50-amd64": True},
        "headers": {"6.1.0-50-amd64": True},
        "processes": [],
        "services": {},
        "nvml_library": {"path": "/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "version": version.split("-")[0]},
        "loaded": None,
        "nvml_python": {"path": "/opt/gpunode/venv/bin/python3", "exists": True, "pynvml": True, "version": "13.615.71",
                        "cuda_bindings": "12.9.4", "python": "3.11.2"},
    }


def lab_plan(bookworm, **overrides):
    overrides.setdefault("kernel_release", "6.1.0-50-amd64")
    return plan(bookworm, DEBIAN, **overrides), inputs(**overrides)
