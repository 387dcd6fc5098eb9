#!/usr/bin/env bash
# The gpunode lab: local podman containers that run systemd as PID 1, used as
# test nodes by site.yml and molecule.
#
#   lab/lab.sh host-setup          apply the host settings this machine needs (only those)
#   lab/lab.sh build [FLAVOUR...]  build/refresh node images (cached by recipe hash)
#   lab/lab.sh up [SPEC]           start nodes and write the inventory
#   lab/lab.sh down                remove every container and volume the lab made
#   lab/lab.sh inventory           print the inventory path
#
# SPEC is "flavour:count,..." (default: $LAB_NODES or bookworm:2,trixie:1).
# Flavours: bookworm (Debian 12), trixie (Debian 13), trixie-c2 (Debian 13 that
# installs containerd 2.x). Needs root: the nodes are privileged system containers.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_STATE=${LAB_STATE:-$LAB_DIR/../.lab}
LAB_NAME_PREFIX=${LAB_NAME_PREFIX:-gpunode-lab}
LAB_NODES=${LAB_NODES:-bookworm:2,trixie:1}
# shellcheck source=lab/images.sh
. "$LAB_DIR/images.sh"
# shellcheck source=lab/host.sh
. "$LAB_DIR/host.sh"

lab_need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "lab: must run as root (privileged systemd containers); try: sudo $0 $*" >&2
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
  lab_host_setup
  lab_build_images "${flavours[@]}"
  # A fresh set each time: leftovers from an earlier spec would skew the inventory.
  lab_down quiet
  while read -r flavour i; do
    name="$LAB_NAME_PREFIX-$flavour-$i"
    # /var/lib/containerd on a volume: overlay on overlay breaks nested containers.
    podman run -d --name "$name" --hostname "$name" \
      --systemd=always --privileged \
      --label gpunode.lab=1 --label "gpunode.lab.flavour=$flavour" \
      --volume "/var/lib/containerd" \
      "$LAB_IMAGE_PREFIX-$flavour" /lib/systemd/systemd >/dev/null
  done <<<"$nodes"
  while read -r flavour i; do
    lab_wait_booted "$LAB_NAME_PREFIX-$flavour-$i"
  done <<<"$nodes"
  lab_write_inventory "$nodes"
  echo "lab: $(wc -l <<<"$nodes") node(s) up; inventory: $(lab_inventory_path)"
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
    echo "      children:"
    for flavour in $(printf "%s\n" "${!LAB_SUITE[@]}" | sort); do
      grep -q "^$flavour " <<<"$1" || continue
      echo "        lab_${flavour//-/_}:"
      echo "          hosts:"
      while read -r f i; do
        [ "$f" = "$flavour" ] && echo "            $LAB_NAME_PREFIX-$f-$i:"
      done <<<"$1"
    done
    echo "    gpu_nodes:"
    echo "      hosts:"
    while read -r flavour i; do
      echo "        $LAB_NAME_PREFIX-$flavour-$i:"
    done <<<"$1"
  } >"$inv"
}

lab_down() {
  local ids vols
  mapfile -t ids < <(podman ps -aq --filter label=gpunode.lab=1)
  if [ ${#ids[@]} -gt 0 ]; then
    # Collect the anonymous volumes first: they outlive their containers.
    mapfile -t vols < <(podman inspect --format \
      '{{range .Mounts}}{{if eq .Type "volume"}}{{println .Name}}{{end}}{{end}}' "${ids[@]}" | grep .)
    podman rm -f -t 5 "${ids[@]}" >/dev/null
    if [ ${#vols[@]} -gt 0 ]; then podman volume rm -f "${vols[@]}" >/dev/null; fi
  fi
  rm -f "$(lab_inventory_path)"
  [ "${1:-}" = quiet ] || echo "lab: removed ${#ids[@]} node(s)"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    host-setup) lab_need_root "$cmd"; lab_host_setup ;;
    build) lab_need_root "$cmd"; lab_host_setup; if [ $# -eq 0 ]; then set -- "${!LAB_SUITE[@]}"; fi; lab_build_images "$@" ;;
    up) lab_need_root "$cmd"; lab_up "$@" ;;
    down) lab_need_root "$cmd"; lab_down ;;
    inventory) lab_inventory_path ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2 ;;
  esac
}

main "$@"
