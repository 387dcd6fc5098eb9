#!/usr/bin/env bash
# The controller matrix: under each ansible-core line pinned in requirements/controllers/, the
# unit tests, the playbook syntax checks and a real site.yml converge and re-run on a lab node
# (tests/controllers). The rest of the suite runs on the main pin (.venv, ansible-core 2.19).
#   scripts/controllers.sh [LINE...]   default: every line there; one result per line at the end
# scripts/test.sh sources this file and runs controller_leg once per line.
#
# A line whose ansible-core needs Python >= 3.12 ("controller-python: trixie" in its pins) runs
# its controller in a container of the lab's trixie image (Python 3.13): it sees this checkout
# at the same path and reaches the lab nodes through the host's podman (scripts/host-podman.sh).
# Each leg's node is a bookworm node started from an image saved after the driver's DKMS build,
# so the build is done once, not once per line. In a whole run (scripts/test.sh) the lab tests
# save it first: the README's main command builds the driver on a bookworm node, and
# tests/lab/test_site_twice.py saves that node (driver_image_save). Run alone, the first leg that
# finds no image up to date makes it with the driver role (tests/controllers/driver_stage.yml).
# Either way the leg's test removes the container toolkit and containerd from its node first,
# so every leg installs and configures them under its own ansible-core. The image is kept while
# the base image and the collection's roles, plugins, playbooks and lab are unchanged.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
. "$ROOT/scripts/lib.sh"

CONTROLLERS_DIR=$ROOT/.cache/controllers
DRIVER_IMAGE_PREFIX=localhost/gpunode-lab-driver
LEG_FLAVOUR=bookworm

controller_lines() {  # every pinned line, oldest first
  local f
  for f in "$ROOT"/requirements/controllers/*.txt; do basename "$f" .txt; done | sort -V
}

trixie_image() { echo "${LAB_IMAGE_PREFIX:-localhost/gpunode-lab}-trixie"; }

# The leg's controller, ready: its venv (made again when its pins change), and the exact
# version of its ansible-core in LEG_CORE.
controller_prepare() {  # LINE
  local line=$1 pins venv stamp where wheels
  pins=$ROOT/requirements/controllers/$line.txt
  [ -f "$pins" ] || { echo "controllers: no pins for ansible-core $line ($pins)" >&2; return 2; }
  venv=$CONTROLLERS_DIR/$line
  where=$(sed -n 's/^# controller-python: *//p' "$pins")
  stamp=$( (cat "$pins"; echo "$where") | sha256sum | cut -c1-16)
  if [ "$(cat "$venv/.gpunode-stamp" 2>/dev/null)" != "$stamp" ]; then
    say "ansible-core $line: creating its controller venv ($where)"
    # Called where errexit is off (test.sh's steps, an if): every command checks its status.
    rm -rf "$venv"
    case $where in
      host)
        python3 -m venv "$venv" || return 1
        "$venv/bin/pip" install -q -r "$pins" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || return 1
        ;;
      trixie)
        # The wheels for Python 3.13 are fetched here (pip's default index); the container
        # installs them offline, with the pip wheel run as its own installer.
        wheels=$venv.wheels
        rm -rf "$wheels"
        "$ROOT/.venv/bin/pip" download -q --dest "$wheels" --only-binary=:all: --python-version 3.13 \
          --implementation cp --abi cp313 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
          --platform manylinux_2_28_x86_64 -r "$pins" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || return 1
        podman run --rm --volume "$ROOT:$ROOT" "$(trixie_image)" sh -ec "
          python3 -m venv --without-pip '$venv'
          '$venv/bin/python' \"\$(ls '$wheels'/pip-*.whl)/pip\" install -q --no-index --find-links '$wheels' -r '$pins'" || return 1
        ;;
      *) echo "controllers: $pins names no controller-python (host or trixie)" >&2; return 2 ;;
    esac
    echo "$stamp" >"$venv/.gpunode-stamp"
  fi
  LEG_WHERE=$where
  LEG_VENV=$venv
  LEG_CORE=$(sed -n 's/^ansible-core==//p' "$pins")
}

# In LEG_RUN: the command prefix that runs a command of the leg's controller (its venv's bin
# first on PATH, its environment), on this machine or in the trixie container; in LEG_PY, its
# Python. For the lab inventory given.
leg_controller() {  # INVENTORY
  # The collections ansible-core needs besides ours (containers.podman for the lab) are the
  # main venv's, from its pinned `ansible` package: the ones users of each line would have.
  local main_site envs e
  main_site=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  envs=(ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_HOME="$ROOT/.ansible" ANSIBLE_ROLES_PATH="$ROOT/roles"
    ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections:$main_site" ANSIBLE_NOCOLOR=1 VIRTUAL_ENV="$LEG_VENV"
    GPUNODE_LEG_INVENTORY="$1" GPUNODE_LEG_CORE="$LEG_CORE")
  if [ "$LEG_WHERE" = host ]; then
    LEG_RUN=(env "${envs[@]}" PATH="$LEG_VENV/bin:$PATH")
  else
    LEG_RUN=(podman run --rm --privileged --pid=host --network=host --volume "$ROOT:$ROOT" --workdir "$ROOT"
      --env GPUNODE_HOST_PID=$$ --env ANSIBLE_PODMAN_EXECUTABLE="$ROOT/scripts/host-podman.sh"
      --env PATH="$LEG_VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for e in "${envs[@]}"; do LEG_RUN+=(--env "$e"); done
    LEG_RUN+=("$(trixie_image)")
  fi
  LEG_PY=("${LEG_RUN[@]}" "$LEG_VENV/bin/python")
}

# The key of the saved driver node: the base image and everything a run that makes it reads.
driver_image_key() {
  { podman image inspect --format '{{.Id}}' "${LAB_IMAGE_PREFIX:-localhost/gpunode-lab}-$LEG_FLAVOUR"
    cd "$ROOT" && find roles plugins playbooks lab/lab.sh lab/host.sh tests/controllers/driver_stage.yml \
      -type f -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16
}

# Saves a running lab node of LEG_FLAVOUR whose driver the driver role built (DKMS) as the legs'
# image, labelled with the key and with who made it. The node's lab prefix label is replaced:
# a container started from the image without a prefix of its own must not belong
# to the lab the node came from, whose `lab.sh down` would remove it.
driver_image_save() {  # NODE MADE-BY
  local key
  key=$(driver_image_key) || return 1
  podman commit --quiet --change "LABEL gpunode.lab.driver-key=$key" --change "LABEL gpunode.lab.driver-core=$2" \
    --change "LABEL gpunode.lab.prefix=saved-driver-image" \
    "$1" "$DRIVER_IMAGE_PREFIX-$LEG_FLAVOUR" >/dev/null
}

# Whether $DRIVER_IMAGE_PREFIX-bookworm exists and its key is the current one.
driver_image_current() {
  [ "$(podman image inspect --format '{{index .Labels "gpunode.lab.driver-key"}}' "$DRIVER_IMAGE_PREFIX-$LEG_FLAVOUR" \
    2>/dev/null)" = "$(driver_image_key)" ]
}

# A bookworm node after the driver role, saved as $DRIVER_IMAGE_PREFIX-bookworm, made by the
# controller of the leg that needs it first when missing or stale.
driver_image_ready() {
  local image=$DRIVER_IMAGE_PREFIX-$LEG_FLAVOUR prefix=ctl-driver-image node inventory rc=0
  if driver_image_current; then
    echo "controllers: $image is up to date (made by $(podman image inspect \
      --format '{{index .Labels "gpunode.lab.driver-core"}}' "$image")); this leg starts from it"
    return 0
  fi
  say "ansible-core $LEG_CORE: the driver role on a bare $LEG_FLAVOUR node (its DKMS build), saved as $image"
  LAB_NAME_PREFIX=$prefix LAB_NODES=$LEG_FLAVOUR:1 bash "$ROOT/lab/lab.sh" up >/dev/null || return 1
  node=$prefix-$LEG_FLAVOUR-1
  inventory=$(LAB_NAME_PREFIX=$prefix bash "$ROOT/lab/lab.sh" inventory)
  leg_controller "$inventory"
  if ! "${LEG_RUN[@]}" ansible-playbook tests/controllers/driver_stage.yml -i "$inventory" \
      >"$CONTROLLERS_DIR/driver-image.log" 2>&1; then
    cat "$CONTROLLERS_DIR/driver-image.log"
    rc=1
  fi
  if [ $rc -eq 0 ]; then
    podman stop -t 30 "$node" >/dev/null && driver_image_save "$node" "ansible-core $LEG_CORE, driver_stage.yml" || rc=1
  fi
  LAB_NAME_PREFIX=$prefix bash "$ROOT/lab/lab.sh" down >/dev/null
  return $rc
}

# One leg. PYTEST_RUNNER: a command that runs pytest with the leg's Python (scripts/test.sh
# passes its counting runner); default: pytest's own exit status.
controller_leg() {  # LINE
  local line=$1 prefix rc=0
  mkdir -p "$CONTROLLERS_DIR"
  controller_prepare "$line" || return 1
  driver_image_ready || return 1
  prefix=ctl-${line//./-}
  LAB_NAME_PREFIX=$prefix LAB_NODES=$LEG_FLAVOUR:1 LAB_NODE_IMAGE_PREFIX=$DRIVER_IMAGE_PREFIX \
    bash "$ROOT/lab/lab.sh" up >/dev/null || return 1
  leg_controller "$(LAB_NAME_PREFIX=$prefix bash "$ROOT/lab/lab.sh" inventory)"
  ${PYTEST_RUNNER:-leg_pytest} tests/unit tests/build/test_playbooks.py tests/controllers || rc=$?
  LAB_NAME_PREFIX=$prefix bash "$ROOT/lab/lab.sh" down >/dev/null || true
  return $rc
}

leg_pytest() { "${LEG_PY[@]}" -m pytest -q -p no:cacheprovider "$@"; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  need_root "$@"
  cd "$ROOT"
  bash scripts/setup.sh
  bash lab/lab.sh build bookworm trixie mirror
  results=()
  status=0
  if [ $# -eq 0 ]; then
    mapfile -t lines < <(controller_lines)
    set -- "${lines[@]}"
  fi
  for line in "$@"; do
    if controller_leg "$line"; then results+=("ansible-core ${LEG_CORE:-$line}: ok"); else
      results+=("ansible-core ${LEG_CORE:-$line}: FAILED"); status=1; fi
  done
  say "controller matrix"
  printf '    %s\n' "${results[@]}"
  exit $status
fi
