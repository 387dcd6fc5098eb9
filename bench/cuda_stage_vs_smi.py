"""How long the cuda stage's workload takes per GPU, beside one `nvidia-smi -q`.

On a GPU node, in one run, the median of REPEAT runs of each of:
  in-process  module_utils/cuda_workload.run_all() over cuda.bindings.driver (the module's
              work: cuInit, and per GPU the context, the PTX JIT, 12 MiB copied, the kernel)
              against `nvidia-smi -q` run here;
  ansible     one `gpunode.nvidia.cuda_workload` task against one `command: nvidia-smi -q` task.
It prints the times, per GPU, the JIT and kernel parts, and the ratios. Times depend on the
machine; the ratios are the result. Needs a GPU: run bench/cuda_stage_vs_smi.sh.
"""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
for _path in os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.join(ROOT, ".cache", "collections")).split(os.pathsep):
    sys.path.insert(0, _path)

from ansible_collections.gpunode.nvidia.plugins.module_utils import cuda_workload as workload  # noqa: E402
from common import REPEAT, ansible_task, median_of  # noqa: E402 - bench/ is on sys.path when a bench script runs


def smi():
    return subprocess.run(["nvidia-smi", "-q"], check=True, capture_output=True, text=True).stdout


def main():
    api, problem = workload.import_binding()
    if api is None:
        sys.exit("cuda-bindings is not importable here (%s): run bench/cuda_stage_vs_smi.sh" % problem)
    t_run, report = median_of(lambda: workload.run_all(api))
    if report["error"] or not all(d["passed"] for d in report["devices"]):
        sys.exit("the workload did not pass here: %s" % (report["message"] or [d["message"] for d in report["devices"]]))
    gpus = len(report["devices"])
    t_smi, _out = median_of(smi)
    t_task, result = median_of(lambda: ansible_task("gpunode.nvidia.cuda_workload"))
    t_smi_task, _res = median_of(lambda: ansible_task("ansible.builtin.command", "nvidia-smi -q"))
    print("medians of %d runs; %d GPU(s) %s; CUDA %s" % (REPEAT, gpus, " / ".join(sorted(set(d["name"] for d in report["devices"]))),
                                                         report["cuda_driver_version"]))
    for device in report["devices"]:
        print("  GPU %d: %.3f s (JIT %.3f s, kernel %.4f s) in the last run" % (device["index"], device["elapsed_s"], device["jit_s"], device["kernel_s"]))
    print("in-process: run_all %.3f s (%.3f s per GPU), nvidia-smi -q %.3f s, ratio workload/smi %.2f (per GPU %.2f)"
          % (t_run, t_run / gpus, t_smi, t_run / t_smi, t_run / gpus / t_smi))
    print("ansible:    cuda_workload task %.3f s, nvidia-smi -q task %.3f s, ratio %.2f; the task passed: %s"
          % (t_task, t_smi_task, t_task / t_smi_task, result.get("passed")))


if __name__ == "__main__":
    main()
