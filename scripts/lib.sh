#!/usr/bin/env bash
# Shared helpers for scripts/*.sh (sourced).

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# The lab's nodes are privileged system containers: everything runs as root.
# Started as another user, the script runs itself again through sudo, keeping
# the variables that choose the lab (LAB_NODES, LAB_NAME_PREFIX, LAB_STATE,
# LAB_TOOLKIT_SOURCE).
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
      echo "${0##*/}: not root: running it again as root through sudo" >&2
      exec sudo --preserve-env=PATH,LAB_NODES,LAB_NAME_PREFIX,LAB_STATE,LAB_TOOLKIT_SOURCE,PYTHON "$0" "$@"
    fi
    echo "${0##*/} needs root (the lab's nodes are privileged containers), and this machine has no sudo" \
      "to get there: run it from a root shell (for example: su - root -c 'cd $PWD && $0')" >&2
    exit 1
  fi
}

# apt and dpkg hold fcntl locks. apt-get waits for the dpkg frontend lock when asked
# (DPkg::Lock::Timeout), but `apt-get update` (apt 2.6) fails at once with exit 100
# while /var/lib/apt/lists/lock is held, as on a fresh VM running apt-daily.
APT_LOCKS=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-900}

# The same reader as the modules' (plugins/module_utils/pkg_locks.py, standard library only).
GPUNODE_PKG_LOCKS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/plugins/module_utils/pkg_locks.py
apt_lock_holder() {  # prints "PID n (command) on LOCK" for the first held apt/dpkg lock, else nothing
  command -v python3 >/dev/null || return 0  # then DPkg::Lock::Timeout alone
  python3 "$GPUNODE_PKG_LOCKS" "${APT_LOCKS[@]}"
}

apt_get() {  # apt-get ARGS...: waits up to APT_LOCK_TIMEOUT s for the apt/dpkg locks instead of failing
  local start=$SECONDS holder said="" rc
  while :; do
    holder=$(apt_lock_holder)
    if [ -z "$holder" ]; then
      rc=0
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" "$@" || rc=$?
      # Exit 100 with a lock held again: taken between the probe and apt-get; wait again.
      holder=$(apt_lock_holder)
      if [ "$rc" -ne 100 ] || [ -z "$holder" ]; then return "$rc"; fi
    fi
    if ((SECONDS - start >= APT_LOCK_TIMEOUT)); then
      echo "apt lock still held by $holder after ${APT_LOCK_TIMEOUT}s: giving up" >&2
      return 100
    fi
    [ "$holder" = "$said" ] || echo "waiting for the apt lock held by $holder" >&2
    said=$holder
    sleep 2
  done
}

apt_install_missing() {  # PACKAGE...: installs those not installed yet (waiting for apt's locks)
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing ${missing[*]}"
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Use the project's venv and its collection link for everything after this.
use_venv() {
  export VIRTUAL_ENV=$ROOT/.venv
  export PATH=$VIRTUAL_ENV/bin:$PATH
  export ANSIBLE_CONFIG=$ROOT/ansible.cfg
  export ANSIBLE_COLLECTIONS_PATH=$ROOT/.cache/collections
  export ANSIBLE_ROLES_PATH=$ROOT/roles
  # Our own Ansible home: tools that install collections (ansible-lint) must not
  # leave a copy of this collection in ~/.ansible that shadows the work tree.
  export ANSIBLE_HOME=$ROOT/.ansible
}

# The common start of the entry scripts: root, this checkout, set-up done, venv on PATH.
controller_ready() {
  need_root "$@"
  cd "$ROOT" || exit 1
  bash "$ROOT/scripts/setup.sh"
  use_venv
}
