#!/usr/bin/env bash
# The driver role with driver_source=preinstalled on a real GPU node: it must
# recognise the running driver (the lent H100 machine runs 580.159.04, open
# kernel module), report it, change nothing, and refuse a wrong pin.
# Runs by hand on any GPU node, or on the lent machine (no network, no systemd
# as PID 1; ansible-core from .whl/, see ../shared/notes/gpu-machine.md):
#   tests/gpu/driver_preinstalled.sh [expected branch, default: the loaded one]
# Not run in this task (no GPU machine was lent): nothing here has been seen to pass yet.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${GPU_WORK:-/tmp/gpunode-driver-gpu}
mkdir -p "$WORK/collections/ansible_collections/gpunode"
ln -sfn "$ROOT" "$WORK/collections/ansible_collections/gpunode/nvidia"
export ANSIBLE_COLLECTIONS_PATH=$WORK/collections ANSIBLE_ROLES_PATH=$ROOT/roles
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=ansible.builtin.default ANSIBLE_LOCALHOST_WARNING=false
if ! command -v ansible-playbook >/dev/null; then
  ls "$ROOT"/.whl/*.whl >/dev/null 2>&1 || { echo "no ansible-playbook and no wheels in .whl/" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --target "$WORK/site" "$ROOT"/.whl/*.whl
  export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH} PATH=$WORK/site/bin:$PATH
fi
PY=$(command -v python3)
ansible --version | head -n 1

banner=$(head -n 1 /proc/driver/nvidia/version 2>/dev/null || echo "none")
loaded=$(sed -n 's/.*  \([0-9][0-9][0-9]\.[0-9.]*\)  .*/\1/p' <<<"$banner" | head -n 1)
flavour=$([[ $banner == *"Open Kernel Module"* ]] && echo open || echo proprietary)
branch=${1:-${loaded%%.*}}
systemd=$([ -d /run/systemd/system ] && echo true || echo false)
echo "node: /proc/driver/nvidia/version: $banner"
echo "node: nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -n 3 | tr '\n' ';')"

cat >"$WORK/driver.yml" <<'YML'
- name: Verify the preinstalled driver on this GPU node
  hosts: localhost
  gather_facts: false
  roles:
    - role: gpunode.nvidia.preflight
    - role: gpunode.nvidia.driver
  post_tasks:
    - name: Show what the driver role saw
      ansible.builtin.debug:
        var: driver_summary
YML

run() {  # label, extra -e arguments...
  local label=$1
  shift
  echo "== $label"
  ansible-playbook -i localhost, -c local "$WORK/driver.yml" \
    -e ansible_python_interpreter="$PY" -e preflight_require_systemd="$systemd" -e preflight_min_gpus=1 \
    -e driver_source=preinstalled -e driver_nvml_install=none -e driver_nvml_python="$PY" "$@" 2>&1 | tee "$WORK/$label.log"
  return "${PIPESTATUS[0]}"
}

# Everything the role could have written to, to show afterwards it wrote nothing.
marker=$WORK/marker
touch "$marker"
sleep 1

status=0
run recognise -e driver_branch="$branch" -e driver_kernel_module_type="$flavour" ${loaded:+-e driver_version="$loaded"} || status=1
recap=$(grep -E '^localhost +:' "$WORK/recognise.log" || true)
echo "recap: $recap"
[[ $recap == *"changed=0"* && $recap == *"failed=0"* ]] || { echo "FAIL: the preinstalled run changed or failed something"; status=1; }
grep -q "running driver $loaded ($flavour kernel module)" "$WORK/recognise.log" || { echo "FAIL: the role did not report driver $loaded $flavour"; status=1; }

touched=$(find /etc /opt /usr/local /var/lib/dkms /boot -xdev -newer "$marker" 2>/dev/null | grep -v '^/etc/ld.so.cache$' || true)
if [ -n "$touched" ]; then
  echo "FAIL: files changed during the run:"
  echo "$touched"
  status=1
else
  echo "ok: nothing under /etc /opt /usr/local /var/lib/dkms /boot changed"
fi

# A pin the node does not run must stop the play with a clear message.
wrong=$((${branch:-580} - 10))
if run refuse-wrong-branch -e driver_branch="$wrong"; then
  echo "FAIL: driver_branch $wrong was accepted on a node running $loaded"
  status=1
else
  grep -q "is not in driver_branch $wrong" "$WORK/refuse-wrong-branch.log" && echo "ok: driver_branch $wrong refused" || status=1
fi
echo "result: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
