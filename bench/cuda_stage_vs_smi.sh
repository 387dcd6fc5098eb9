#!/usr/bin/env bash
# The cuda stage's workload per GPU against `nvidia-smi -q`, on this GPU node (see the .py's docstring).
# Runs by hand on any GPU node, or on the lent GPU machine with ansible-core and cuda-bindings from .whl/.
#   bench/cuda_stage_vs_smi.sh            (BENCH_REPEAT=5 by default)
set -euo pipefail
# shellcheck source=tests/gpu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/gpu/lib.sh"
gpu_setup
gpu_cuda_bindings
echo "command: BENCH_REPEAT=${BENCH_REPEAT:-5} python3 bench/cuda_stage_vs_smi.py on $(hostname), $(nvidia-smi -L | wc -l) GPU(s)"
exec python3 "$GPU_ROOT/bench/cuda_stage_vs_smi.py"
