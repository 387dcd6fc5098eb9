"""How long nvml_info takes against reading the same fields by parsing `nvidia-smi -q`.

On a GPU node, in one run, the median of REPEAT runs of each of:
  in-process  module_utils/nvml.read_all() over pynvml (the module's work)
              against `nvidia-smi -q` run and parsed here (the same fields);
  ansible     one `gpunode.nvidia.nvml_info` task
              against one `command: nvidia-smi -q` task whose output is then
              parsed on the controller (what a role that parses would pay).
It prints the times, the ratios, and the fields read both ways side by side, so
that "the same fields" can be checked by eye. Times depend on the machine; the
ratios are the result. Needs a GPU: run bench/nvml_info_vs_smi.sh.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
for _path in os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".cache", "collections")).split(os.pathsep):
    sys.path.insert(0, _path)

from ansible_collections.gpunode.nvidia.plugins.module_utils import nvml  # noqa: E402 pylint: disable=wrong-import-position
from common import REPEAT, ansible_task, median_of  # noqa: E402 - bench/ is on sys.path when a bench script runs

# nvidia-smi -q names, newest first where drivers renamed them.
SMI_NAMES = {
    "power": (("GPU Power Readings", "Instantaneous Power Draw"), ("GPU Power Readings", "Power Draw"), ("Power Readings", "Power Draw")),
    "clock_events": (("Clocks Event Reasons",), ("Clocks Throttle Reasons",)),
    "volatile_uncorrected": (("ECC Errors", "Volatile", "DRAM Uncorrectable"), ("ECC Errors", "Volatile", "Double Bit", "Total")),
    "aggregate_uncorrected": (("ECC Errors", "Aggregate", "DRAM Uncorrectable"), ("ECC Errors", "Aggregate", "Double Bit", "Total")),
}


def parse_smi_q(text):
    """`nvidia-smi -q` -> nested dicts by indentation; 'GPU <bus id>' sections under 'gpus'."""
    tree = {"gpus": {}}
    stack = [(-1, tree)]
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("="):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if " : " in line or line.endswith(" :"):
            key, _sep, value = line.partition(":")
            parent[key.strip()] = value.strip()
        elif indent == 0 and line.startswith("GPU "):
            section = tree["gpus"][line[4:]] = {}
            stack.append((indent, section))
        else:
            section = parent[line] = {}
            stack.append((indent, section))
    return tree


def _get(section, *paths):
    for path in paths:
        node = section
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def smi_fields(tree):
    """The fields nvml_info returns, as nvidia-smi -q words them."""
    gpus = []
    for bus_id, gpu in tree["gpus"].items():
        events = _get(gpu, *SMI_NAMES["clock_events"]) or {}
        gpus.append({
            "pci_bus_id": bus_id,
            "name": gpu.get("Product Name"),
            "uuid": gpu.get("GPU UUID"),
            "memory": _get(gpu, ("FB Memory Usage",)),
            "persistence_mode": gpu.get("Persistence Mode"),
            "mig": _get(gpu, ("MIG Mode",)),
            "ecc": _get(gpu, ("ECC Mode",)),
            "volatile_uncorrected": _get(gpu, *SMI_NAMES["volatile_uncorrected"]),
            "aggregate_uncorrected": _get(gpu, *SMI_NAMES["aggregate_uncorrected"]),
            "compute_mode": gpu.get("Compute Mode"),
            "compute_capability": gpu.get("CUDA Compute Capability"),  # absent before driver 550
            "temperature_c": _get(gpu, ("Temperature", "GPU Current Temp")),
            "power_w": _get(gpu, *SMI_NAMES["power"]),
            "clock_event_reasons": sorted(k for k, v in events.items() if v == "Active"),
            "remapped_rows": _get(gpu, ("Remapped Rows",)),
            "retired_pages": _get(gpu, ("Retired Pages",)),
            "fabric": _get(gpu, ("Fabric",)),
        })
    return {"driver_version": tree.get("Driver Version"), "cuda_driver_version": tree.get("CUDA Version"), "gpus": gpus}


def in_process():
    import pynvml  # pylint: disable=import-outside-toplevel

    def smi():
        out = subprocess.run(["nvidia-smi", "-q"], check=True, capture_output=True, text=True).stdout
        return smi_fields(parse_smi_q(out))

    return median_of(lambda: nvml.read_all(pynvml)), median_of(smi)


def through_ansible():
    info = median_of(lambda: ansible_task("gpunode.nvidia.nvml_info"))
    smi = median_of(lambda: smi_fields(parse_smi_q(ansible_task("ansible.builtin.command", "nvidia-smi -q")["stdout"])))
    return info, smi


def side_by_side(ours, theirs):
    print("\n%-22s %-40s %s" % ("field", "nvml_info", "nvidia-smi -q"))
    print("%-22s %-40s %s" % ("driver_version", ours["driver_version"], theirs["driver_version"]))
    print("%-22s %-40s %s" % ("cuda_driver_version", ours["cuda_driver_version"], theirs["cuda_driver_version"]))
    for mine, smi in zip(ours["gpus"], theirs["gpus"]):
        for key in smi:
            nv = mine.get(key)
            if key in ("volatile_uncorrected", "aggregate_uncorrected"):
                nv = (mine.get("ecc") or {}).get(key)
            print("%-22s %-40s %s" % (key, json.dumps(nv)[:40], json.dumps(smi[key])[:80]))
    agree = ours["driver_version"] == theirs["driver_version"] and [g["uuid"] for g in ours["gpus"]] == [g["uuid"] for g in theirs["gpus"]]
    print("driver version and GPU UUIDs agree: %s" % ("yes" if agree else "NO"))


def main():
    (t_nvml, ours), (t_smi, theirs) = in_process()
    side_by_side(ours, theirs)
    (t_task, _info), (t_smi_task, _fields) = through_ansible()
    print("\nmedian of %d runs on %d GPU(s)" % (REPEAT, len(ours["gpus"])))
    print("in-process: nvml read_all %.3f s, nvidia-smi -q + parse %.3f s, ratio smi/nvml %.1f" % (t_nvml, t_smi, t_smi / t_nvml))
    print("ansible:    nvml_info task %.3f s, nvidia-smi -q task + parse %.3f s, ratio %.2f" % (t_task, t_smi_task, t_smi_task / t_task))


if __name__ == "__main__":
    main()
