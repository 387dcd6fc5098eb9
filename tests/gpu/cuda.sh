#!/usr/bin/env bash
# The cuda stage on the real GPU(s) of this node: gpunode.nvidia.cuda_workload on the host (a PTX
# vector add on every GPU through cuda.bindings.driver), its real error mapping (a device that does
# not exist, a CUDA version no driver has), validate's cuda stage, and, where containerd and the
# NVIDIA runtime are installed, the same workload in a container from the image
# cuda_workload_image makes on the node. Run by hand on any GPU node, or on the lent GPU machine
# (ansible-core and cuda-bindings wheels from .whl/, see tests/gpu/lib.sh). Prints what it saw.
#   tests/gpu/cuda.sh
# Exit 0: every check held; 1: one did not; 2: it could not run (no driver).
set -euo pipefail
# shellcheck source=tests/gpu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -r /proc/driver/nvidia/version ]; then
  echo "cuda: NOT RUN: no NVIDIA driver loaded" >&2
  exit 2
fi
gpu_setup
gpu_cuda_bindings
echo "driver: $(head -n 1 /proc/driver/nvidia/version)"
nvidia-smi -L || true

runtime=no
if command -v ctr >/dev/null && [ -x /usr/bin/nvidia-container-runtime ] && ctr version >/dev/null 2>&1; then
  runtime=yes
else
  echo "cuda: no containerd with the NVIDIA runtime here: the runtime part is not run (host part only)"
fi
reports=$GPU_WORK/validate-reports
rm -rf "$reports"
ansible-playbook -i localhost, -c local "$GPU_ROOT/tests/gpu/cuda.yml" \
  -e ansible_python_interpreter="$(command -v python3)" -e validate_report_dir="$reports" \
  -e "{\"cuda_runtime\": $([ $runtime = yes ] && echo true || echo false)}"

echo "== the validate report's cuda stage"
python3 -c 'import json, sys; print(json.dumps([s for s in json.load(open(sys.argv[1]))["stages"] if s["stage"] == "cuda"], indent=1))' \
  "$reports/localhost.json"
