#!/usr/bin/env bash
# nvidia-ctk cdi generate on a GPU node where the NVIDIA Container Toolkit is installed
# (the container_toolkit role, or by hand): the spec must list every GPU that NVML sees,
# by UUID and by index, and the "all" device. NVML is read through our nvml_info module,
# the spec with Python's json, not through nvidia-ctk. Prints what it saw.
#   tests/gpu/toolkit_cdi.sh
# Exit 0: the spec matches NVML; 1: it does not; 2: it could not run (no nvidia-ctk or
# no driver), which is not a pass.
set -euo pipefail
# shellcheck source=tests/gpu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ctk=${NVIDIA_CTK:-$(command -v nvidia-ctk || true)}
if [ -z "$ctk" ]; then
  echo "toolkit_cdi: NOT RUN: no nvidia-ctk on this node (install the toolkit: the container_toolkit role)" >&2
  exit 2
fi
if [ ! -r /proc/driver/nvidia/version ]; then
  echo "toolkit_cdi: NOT RUN: no NVIDIA driver loaded" >&2
  exit 2
fi
gpu_setup
echo "nvidia-ctk: $("$ctk" --version | head -n 1)"
echo "driver: $(head -n 1 /proc/driver/nvidia/version)"

spec=$GPU_WORK/cdi/nvidia.json
mkdir -p "$(dirname "$spec")"
"$ctk" cdi generate --format=json --output="$spec" --device-name-strategy=uuid
uuid_names=$(python3 -c 'import json, sys; print(" ".join(sorted(d["name"] for d in json.load(open(sys.argv[1]))["devices"])))' "$spec")
"$ctk" cdi generate --format=json --output="$spec.index" --device-name-strategy=index
index_names=$(python3 -c 'import json, sys; print(" ".join(sorted(d["name"] for d in json.load(open(sys.argv[1]))["devices"])))' "$spec.index")
echo "spec devices (uuid): $uuid_names"
echo "spec devices (index): $index_names"

python=$(command -v python3)
ansible localhost -c local -m gpunode.nvidia.nvml_info -e ansible_python_interpreter="$python" -o >"$GPU_WORK/nvml_info.txt"
nvml=$(python3 -c '
import json, sys
text = open(sys.argv[1]).read()
result = json.loads(text[text.index("{"):])
gpus = result["gpus"]
print(" ".join(sorted(g["uuid"] for g in gpus)), "|", " ".join(sorted(str(g["index"]) for g in gpus)))
' "$GPU_WORK/nvml_info.txt")
nvml_uuids=${nvml%% |*}
nvml_indexes=${nvml##*| }
echo "NVML GPUs (uuid): $nvml_uuids"
echo "NVML GPUs (index): $nvml_indexes"

fail=0
for name in $nvml_uuids all; do
  [[ " $uuid_names " == *" $name "* ]] || { echo "FAIL: the uuid spec has no device $name" >&2; fail=1; }
done
for name in $nvml_indexes all; do
  [[ " $index_names " == *" $name "* ]] || { echo "FAIL: the index spec has no device $name" >&2; fail=1; }
done
[ -n "$nvml_uuids" ] || { echo "FAIL: NVML saw no GPU" >&2; fail=1; }
[ "$fail" -eq 0 ] && echo "toolkit_cdi: PASS: the CDI spec lists every GPU NVML sees ($(wc -w <<<"$nvml_uuids"))"
exit "$fail"
