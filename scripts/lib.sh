#!/usr/bin/env bash
# Shared helpers for scripts/*.sh (sourced).

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The lab's nodes are privileged system containers: everything runs as root.
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
      exec sudo --preserve-env=PATH,LAB_NODES,PYTHON "$0" "$@"
    fi
    echo "run as root" >&2
    exit 1
  fi
}

# Use the project's venv and its collection link for everything after this.
use_venv() {
  export VIRTUAL_ENV=$ROOT/.venv
  export PATH=$VIRTUAL_ENV/bin:$PATH
  export ANSIBLE_CONFIG=$ROOT/ansible.cfg
  export ANSIBLE_COLLECTIONS_PATH=$ROOT/.cache/collections
  export ANSIBLE_ROLES_PATH=$ROOT/roles
}

# The common start of the entry scripts: root, this checkout, set-up done, venv on PATH.
controller_ready() {
  need_root "$@"
  cd "$ROOT" || exit 1
  bash "$ROOT/scripts/setup.sh"
  use_venv
}
