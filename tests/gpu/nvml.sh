#!/usr/bin/env bash
# nvml_info, nvml_check and the validate role's driver stage against the real
# GPU(s) of this node; run by hand on any GPU node, or on the lent GPU machine
# (ansible-core from .whl/, see tests/gpu/lib.sh). Prints what it saw.
#   tests/gpu/nvml.sh
set -euo pipefail
# shellcheck source=tests/gpu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
gpu_setup

python=$(command -v python3)
echo "python: $python; nvidia-ml-py: $("$python" -c 'import importlib.metadata as m; print(m.version("nvidia-ml-py"))' 2>/dev/null || echo 'not in this Python (the modules will look elsewhere)')"
echo "driver: $(head -n 1 /proc/driver/nvidia/version 2>/dev/null || echo 'not loaded')"
nvidia-smi -L || true

reports=$GPU_WORK/validate-reports
rm -rf "$reports"
ansible-playbook -i localhost, -c local "$GPU_ROOT/tests/gpu/nvml.yml" \
  -e ansible_python_interpreter="$python" -e validate_report_dir="$reports"

echo "== the validate report"
cat "$reports/localhost.json"
