#!/usr/bin/env bash
# nvml_info against `nvidia-smi -q` parsing, on this GPU node (see the .py's docstring).
# Runs by hand on any GPU node, or on the lent GPU machine with ansible-core from .whl/.
#   bench/nvml_info_vs_smi.sh            (BENCH_REPEAT=5 by default)
set -euo pipefail
# shellcheck source=tests/gpu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/gpu/lib.sh"
gpu_setup
echo "command: BENCH_REPEAT=${BENCH_REPEAT:-5} python3 bench/nvml_info_vs_smi.py on $(hostname), $(nvidia-smi -L | wc -l) GPU(s)"
exec python3 "$GPU_ROOT/bench/nvml_info_vs_smi.py"
