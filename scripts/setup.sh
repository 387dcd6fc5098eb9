#!/usr/bin/env bash
# Prepare this Debian/Ubuntu machine to run the lab and the tests; safe to re-run.
#   - apt: podman, runc, debootstrap, python3-venv, git (only what is missing; waits for apt's locks)
#   - .venv with the pinned controller packages (reinstalled when the pins change)
#   - .cache/collections/ansible_collections/gpunode/nvidia -> this checkout
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/lib.sh"
need_root "$@"

APT_PACKAGES=(podman runc debootstrap python3-venv git ca-certificates shellcheck)
apt_install_missing "${APT_PACKAGES[@]}"

VENV=$ROOT/.venv
stamp=$(cat "$ROOT/requirements/controller.txt" "$ROOT/requirements/constraints.txt" | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.gpunode-stamp" 2>/dev/null)" != "$stamp" ]; then
  say "creating $VENV with the pinned controller packages (about a minute)"
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # (This machine's pip may warn about absent local indexes: harmless.)
  "$VENV/bin/pip" install -q -r "$ROOT/requirements/controller.txt" -c "$ROOT/requirements/constraints.txt" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$stamp" >"$VENV/.gpunode-stamp"
fi

# Ansible finds the collection by its FQCN only under ansible_collections/<ns>/<name>.
link=$ROOT/.cache/collections/ansible_collections/gpunode/nvidia
mkdir -p "$(dirname "$link")"
[ -L "$link" ] || ln -sfn ../../../.. "$link"
say "controller ready: source $VENV/bin/activate"
