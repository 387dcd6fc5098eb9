#!/usr/bin/env bash
# The gpunode lab: local podman containers that run systemd as PID 1, used as
# test nodes by site.yml and molecule.
#
#   lab/lab.sh host-setup          apply the host settings this machine needs (only those)
#   lab/lab.sh build [FLAVOUR...]  build/refresh images (cached by recipe hash); default: all,
#                                  the mirror's included
#   lab/lab.sh up [SPEC]           start nodes and write the inventory
#   lab/lab.sh down                remove this lab's containers and their volumes
#   lab/lab.sh inventory           print the inventory path
#   lab/lab.sh vars                print the variables lab nodes need (YAML): the driver's,
#                                  and the toolkit's pointing at the lab's mirror
#   lab/lab.sh wheels              download (once, into $LAB_WHEELS) and print the wheels lab
#                                  nodes install: nvidia-ml-py, cuda-bindings, cuda-pathfinder
#   lab/lab.sh mirror-up           start this lab's mirror alone (kept if running); prints its URL
#   lab/lab.sh mirror-url [good|other-key]
#                                  the running mirror's apt URL ($(ARCH) form); its key is at
#                                  the same base + /gpgkey. other-key: the same packages
#                                  signed by another key (apt must refuse it)
#
# SPEC is "flavour:count,..." (default: $LAB_NODES or bookworm:2,trixie:1).
# Flavours: bookworm (Debian 12), trixie (Debian 13), trixie-c2 (Debian 13 that
# installs containerd 2.x). Needs root: the nodes are privileged system containers.
# Every lab also gets a package mirror node, <prefix>-mirror (image flavour mirror,
# see lab/mirror.sh): test doubles of NVIDIA's container toolkit packages, group
# lab_mirror in the inventory, not a GPU node. LAB_TOOLKIT_SOURCE=nvidia: vars (and
# the inventory) leave the toolkit role on NVIDIA's real repository instead.
# One lab per LAB_NAME_PREFIX (default gpunode-lab): up and down touch only its
# nodes; its state (inventory) is in LAB_STATE (.lab, or .lab/<prefix>).
# LAB_NODE_IMAGE_PREFIX: start the nodes from saved images of the same flavours instead
# (<prefix>-<flavour>: a node saved after an expensive stage, see scripts/controllers.sh);
# the lab's own node images are then not built.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_ROOT=$(cd "$LAB_DIR/.." && pwd)
LAB_NAME_PREFIX=${LAB_NAME_PREFIX:-gpunode-lab}
if [ "$LAB_NAME_PREFIX" = gpunode-lab ]; then
  LAB_STATE=${LAB_STATE:-$LAB_ROOT/.lab}
else
  LAB_STATE=${LAB_STATE:-$LAB_ROOT/.lab/$LAB_NAME_PREFIX}
fi
LAB_NODES=${LAB_NODES:-bookworm:2,trixie:1}
# The nvidia-ml-py and cuda-bindings wheels for the nodes (they cannot reach PyPI), fetched once.
LAB_WHEELS=${LAB_WHEELS:-$LAB_ROOT/.cache/wheels}
# shellcheck source=lab/images.sh
. "$LAB_DIR/images.sh"
# shellcheck source=lab/host.sh
. "$LAB_DIR/host.sh"
# shellcheck source=lab/mirror.sh
. "$LAB_DIR/mirror.sh"

lab_need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "lab: must run as root (privileged systemd containers): from a root shell, or sudo $0 $*" >&2
    exit 1
  fi
}

lab_parse_spec() {  # SPEC -> lines "flavour index"
  local item flavour count i
  IFS=',' read -ra items <<<"$1"
  for item in "${items[@]}"; do
    flavour=${item%%:*}
    count=${item#*:}
    [ "$count" = "$item" ] && count=1
    if [ -z "${LAB_SUITE[$flavour]:-}" ]; then
      echo "lab: unknown flavour '$flavour' (known: ${!LAB_SUITE[*]})" >&2
      exit 2
    fi
    if ! [[ $count =~ ^[0-9]+$ ]] || [ "$count" -lt 1 ]; then
      echo "lab: bad node count '$count' for $flavour" >&2
      exit 2
    fi
    for ((i = 1; i <= count; i++)); do echo "$flavour $i"; done
  done
}

lab_wait_booted() {  # container -> waits for systemd to finish starting
  local state i
  for ((i = 0; i < 120; i++)); do
    state=$(podman exec "$1" systemctl is-system-running 2>/dev/null || true)
    case "$state" in
      running) return 0 ;;
      degraded)
        echo "lab: $1 booted degraded; failed units:" >&2
        podman exec "$1" systemctl --failed --no-legend >&2 || true
        return 1 ;;
    esac
    sleep 0.5
  done
  echo "lab: $1 did not finish booting (state: ${state:-unknown})" >&2
  return 1
}

lab_up() {
  local spec=${1:-$LAB_NODES} flavour i name flavours=() nodes
  nodes=$(lab_parse_spec "$spec")
  while read -r flavour i; do
    [[ " ${flavours[*]} " == *" $flavour "* ]] || flavours+=("$flavour")
  done <<<"$nodes"
  if ! [[ $LAB_NAME_PREFIX =~ ^[a-z0-9][a-z0-9_.-]*$ ]]; then
    echo "lab: bad LAB_NAME_PREFIX '$LAB_NAME_PREFIX' (letters, digits, . _ -)" >&2
    exit 2
  fi
  lab_host_setup
  if [ -n "${LAB_NODE_IMAGE_PREFIX:-}" ]; then
    lab_build mirror
  else
    lab_build "${flavours[@]}" mirror
  fi
  lab_wheels >/dev/null
  # A fresh set each time: leftovers from an earlier spec would skew the inventory.
  lab_down quiet
  while read -r flavour i; do
    name="$LAB_NAME_PREFIX-$flavour-$i"
    # /var/lib/containerd on a volume: overlay on overlay breaks nested containers.
    podman run -d --name "$name" --hostname "$name" \
      --systemd=always --privileged \
      --label gpunode.lab=1 --label "gpunode.lab.prefix=$LAB_NAME_PREFIX" \
      --label "gpunode.lab.flavour=$flavour" \
      --volume "/var/lib/containerd" \
      "${LAB_NODE_IMAGE_PREFIX:-$LAB_IMAGE_PREFIX}-$flavour" /lib/systemd/systemd >/dev/null
  done <<<"$nodes"
  lab_mirror_start
  while read -r flavour i; do
    lab_wait_booted "$LAB_NAME_PREFIX-$flavour-$i"
  done <<<"$nodes"
  lab_mirror_wait
  lab_write_inventory "$nodes"
  echo "lab: $(wc -l <<<"$nodes") node(s) and the mirror up ($(lab_mirror_url good)); inventory: $(lab_inventory_path)"
}

lab_inventory_path() {
  echo "$(cd "$LAB_STATE" 2>/dev/null && pwd || echo "$LAB_STATE")/inventory.yml"
}

lab_write_inventory() {  # node lines
  local flavour i name inv
  mkdir -p "$LAB_STATE"
  inv=$(lab_inventory_path)
  {
    echo "# Written by lab/lab.sh up: the local lab nodes (podman containers)."
    echo "all:"
    echo "  children:"
    echo "    lab_nodes:"
    echo "      vars:"
    echo "        ansible_connection: containers.podman.podman"
    echo "        ansible_python_interpreter: /usr/bin/python3"
    lab_vars | sed 's/^/        /'
    echo "      children:"
    for flavour in $(printf "%s\n" "${!LAB_SUITE[@]}" | sort); do
      grep -q "^$flavour " <<<"$1" || continue
      echo "        lab_${flavour//-/_}:"
      echo "          hosts:"
      while read -r f i; do
        [ "$f" = "$flavour" ] && echo "            $LAB_NAME_PREFIX-$f-$i:"
      done <<<"$1"
    done
    if lab_mirror_ip >/dev/null; then
      echo "    lab_mirror:"
      echo "      vars:"
      echo "        ansible_connection: containers.podman.podman"
      echo "        ansible_python_interpreter: /usr/bin/python3"
      echo "      hosts:"
      echo "        $(lab_mirror_name):"
    fi
    echo "    gpu_nodes:"
    echo "      hosts:"
    while read -r flavour i; do
      echo "        $LAB_NAME_PREFIX-$flavour-$i:"
    done <<<"$1"
  } >"$inv"
}

# pip for the lab's downloads: the checkout's venv where it has one.
lab_pip() {
  local python=${PYTHON:-python3}
  [ -x "$LAB_ROOT/.venv/bin/python" ] && python=$LAB_ROOT/.venv/bin/python
  "$python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

# Wheels are downloaded once into LAB_WHEELS. lab_wheel DIR NAME_GLOB ARGS...: the wheel
# in DIR matching NAME_GLOB, downloaded first (pip download ARGS, no dependencies) when
# there is none; prints its path.
lab_wheel() {
  local dir=$1 glob=$2 wheel
  shift 2
  mkdir -p "$dir"
  wheel=$(find "$dir" -maxdepth 1 -name "$glob" -print -quit)
  if [ -z "$wheel" ]; then
    lab_pip download -q --no-deps --only-binary=:all: -d "$dir" "$@" >&2
    wheel=$(find "$dir" -maxdepth 1 -name "$glob" -print -quit)
    [ -n "$wheel" ] || { echo "lab: pip download $* left no $glob in $dir" >&2; exit 1; }
  fi
  echo "$(cd "$dir" && pwd)/$(basename "$wheel")"
}

# The nvidia-ml-py pin is the driver role's default (one place). Prints the wheel's path.
lab_nvml_wheel() {
  local req version
  req=$(sed -n 's/^driver_nvml_package: *//p' "$LAB_ROOT/roles/driver/defaults/main.yml")
  version=${req#*==}
  if [ -z "$req" ] || [ "$version" = "$req" ]; then
    echo "lab: no pinned driver_nvml_package in roles/driver/defaults/main.yml" >&2
    exit 1
  fi
  lab_wheel "$LAB_WHEELS" "nvidia_ml_py-$version-*.whl" "$req"
}

# The Python of each lab release's /usr/bin/python3 (Debian 12, 13).
declare -A LAB_PYTHON=([bookworm]=3.11 [trixie]=3.13)

# What the driver role's default (driver_cuda_bindings_package: auto) asks for on each
# lab release, from the role's own logic (plugin_utils/driver_plan.py) and the default
# branch in vars/Debian.yml: lines "suite requirement wheel-name-glob".
lab_cuda_bindings_requirements() {
  local python=${PYTHON:-python3} suite
  [ -x "$LAB_ROOT/.venv/bin/python" ] && python=$LAB_ROOT/.venv/bin/python
  for suite in $(printf "%s\n" "${LAB_SUITE[@]}" | sort -u); do
    echo "$suite $(lab_debian_release "$suite") ${LAB_PYTHON[$suite]}"
  done | "$python" -c '
import sys, yaml
root = sys.argv[1]
sys.path.insert(0, root + "/.cache/collections")
try:
    from ansible_collections.gpunode.nvidia.plugins.plugin_utils.driver_plan import cuda_bindings
except ImportError:
    sys.exit("lab: the collection is not importable from .cache/collections: run scripts/setup.sh")
with open(root + "/roles/driver/defaults/main.yml") as handle:
    wanted = yaml.safe_load(handle)["driver_cuda_bindings_package"]
with open(root + "/roles/driver/vars/Debian.yml") as handle:
    releases = yaml.safe_load(handle)["_driver_os"]["sources"]["distro"]["releases"]
for line in sys.stdin:
    suite, release, python = line.split()
    chosen = cuda_bindings(wanted, str(releases[release]["default_branch"]))
    if chosen:
        tag = "cp" + python.replace(".", "")
        print(suite, chosen["requirement"], "cuda_bindings-%s-%s-*.whl" % (chosen["pin"] or "*", tag))
' "$LAB_ROOT"
}

lab_debian_release() {  # suite -> Debian release number
  case $1 in
    bookworm) echo 12 ;;
    trixie) echo 13 ;;
    *) echo "lab: no Debian release known for suite $1" >&2; exit 1 ;;
  esac
}

# cuda-bindings for each lab release's Python and cuda-pathfinder (pure Python), for
# driver_cuda_bindings_wheels: lab nodes cannot reach an index. Prints one path a line.
lab_cuda_bindings_wheels() {
  local suite req glob platforms lines
  platforms=(--implementation cp --platform "manylinux_2_28_$(uname -m)" --platform "manylinux_2_17_$(uname -m)")
  lines=$(lab_cuda_bindings_requirements)
  [ -n "$lines" ] || return 0
  while read -r suite req glob; do
    lab_wheel "$LAB_WHEELS" "$glob" --python-version "${LAB_PYTHON[$suite]}" "${platforms[@]}" "$req"
  done <<<"$lines"
  lab_wheel "$LAB_WHEELS" "cuda_pathfinder-*.whl" cuda-pathfinder
}

# Every wheel lab nodes install, downloaded once; one path a line.
lab_wheels() {
  lab_nvml_wheel
  lab_cuda_bindings_wheels
}

# What every lab node needs from the driver role: the module built for the kernel
# Debian's headers metapackage stands for (the node runs the VM's kernel), and
# nvidia-ml-py and cuda-bindings from the controller's wheels; from the toolkit role,
# the lab's mirror (NVIDIA's repository is not reachable from the lab).
lab_vars() {
  local wheel
  echo "driver_kernel_release: packaged"
  echo "driver_nvml_wheel: $(lab_nvml_wheel)"
  echo "driver_cuda_bindings_wheels:"
  lab_cuda_bindings_wheels | while read -r wheel; do echo "  - $wheel"; done
  lab_mirror_vars
}

lab_node_ids() {  # this prefix's containers (and, by name, those an older lab.sh made)
  local id name prefix rest flavours
  flavours=$(printf "%s|" "${!LAB_SUITE[@]}")
  while read -r id name prefix; do
    rest=${name#"$LAB_NAME_PREFIX"-}
    if [ "$prefix" = "$LAB_NAME_PREFIX" ] ||
      { [ -z "$prefix" ] && [ "$rest" != "$name" ] && [[ $rest =~ ^(${flavours%|})-[0-9]+$ ]]; }; then
      echo "$id"
    fi
  done < <(podman ps -a --filter label=gpunode.lab=1 \
    --format '{{.ID}} {{.Names}} {{index .Labels "gpunode.lab.prefix"}}')
}

lab_down() {
  local ids vols mirror=0
  [ -z "$(podman ps -aq --filter label=gpunode.lab.role=mirror \
    --filter "label=gpunode.lab.prefix=$LAB_NAME_PREFIX")" ] || mirror=1
  mapfile -t ids < <(lab_node_ids)
  if [ ${#ids[@]} -gt 0 ]; then
    # Collect the anonymous volumes first: they outlive their containers.
    mapfile -t vols < <(podman inspect --format \
      '{{range .Mounts}}{{if eq .Type "volume"}}{{println .Name}}{{end}}{{end}}' "${ids[@]}" | grep .)
    podman rm -f -t 5 "${ids[@]}" >/dev/null
    if [ ${#vols[@]} -gt 0 ]; then podman volume rm -f "${vols[@]}" >/dev/null; fi
  fi
  rm -f "$(lab_inventory_path)"
  [ "${1:-}" = quiet ] || echo "lab: removed $((${#ids[@]} - mirror)) node(s)$([ "$mirror" = 0 ] || echo " and the mirror")"
}

lab_build() {  # [FLAVOUR...]: all (the nodes' and the mirror) by default
  local f nodes=() mirror=false pid rc=0
  [ $# -gt 0 ] || set -- "${!LAB_SUITE[@]}" mirror
  for f in "$@"; do
    if [ "$f" = mirror ]; then mirror=true; else nodes+=("$f"); fi
  done
  if [ "$mirror" = false ]; then lab_build_images "${nodes[@]}"; return; fi
  if [ ${#nodes[@]} -eq 0 ]; then lab_build_mirror; return; fi
  # Two debootstraps at once: mostly waiting on the network and the disk.
  lab_build_mirror &
  pid=$!
  lab_build_images "${nodes[@]}" || rc=$?
  wait "$pid" || rc=$?
  return "$rc"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    host-setup) lab_need_root "$cmd"; lab_host_setup ;;
    build) lab_need_root "$cmd"; lab_host_setup; lab_build "$@" ;;
    up) lab_need_root "$cmd"; lab_up "$@" ;;
    down) lab_need_root "$cmd"; lab_down ;;
    inventory) lab_inventory_path ;;
    vars) lab_vars ;;
    wheels) lab_wheels ;;
    mirror-up) lab_need_root "$cmd"; lab_host_setup; lab_mirror_up ;;
    mirror-url) lab_mirror_url "$@" ;;
    *) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
  esac
}

main "$@"
