#!/usr/bin/env bash
# preflight on a real GPU node (run by hand, or on the lent GPU machine):
# the facts module must see the GPUs and the loaded driver, and the role must
# pass with preflight_min_gpus set to the number of GPUs lspci/sysfs shows.
#   tests/gpu/preflight.sh
set -euo pipefail
# shellcheck source=tests/gpu/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
gpu_setup

# Count NVIDIA display-class functions straight from sysfs, independently of the module.
expected=0
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor")" = 0x10de ] || continue
  case "$(cat "$d/class")" in 0x0300*|0x0302*) expected=$((expected + 1)) ;; esac
done
echo "sysfs: $expected NVIDIA GPU(s); /proc/driver/nvidia/version: $(head -n 1 /proc/driver/nvidia/version 2>/dev/null || echo none)"

echo "== gpunode.nvidia.preflight_facts"
ansible localhost -c local -m gpunode.nvidia.preflight_facts \
  | sed -n '/"gpunode_preflight"/,$p' | grep -E '"(count|version|kernel_module_type|pid1|systemd|container|id|major_version|target|enabled|firmware)"' | sort | uniq -c

echo "== preflight role (systemd not required here: the lent machine has none as PID 1)"
cat >"$GPU_WORK/preflight.yml" <<'YML'
- name: Preflight this GPU node
  hosts: localhost
  gather_facts: false
  roles:
    - role: gpunode.nvidia.preflight
  post_tasks:
    - name: Show the verdict
      ansible.builtin.debug:
        msg: "{{ preflight_summary }}"
YML
ansible-playbook -i localhost, -c local "$GPU_WORK/preflight.yml" \
  -e ansible_python_interpreter="$(command -v python3)" \
  -e preflight_require_systemd="$([ -d /run/systemd/system ] && echo true || echo false)" \
  -e preflight_min_gpus="$expected"
