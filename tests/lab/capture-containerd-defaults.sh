#!/usr/bin/env bash
# Capture what the real containerd of each lab image says about its own
# configuration, for the unit tests of the containerd_runtime module:
#   tests/unit/fixtures/containerd/real/<series>/version.txt      containerd --version
#   tests/unit/fixtures/containerd/real/<series>/default.toml     containerd config default
#   tests/unit/fixtures/containerd/real/<series>/package-config.toml  the config.toml Debian's package installs
# Series: 1.6 (Debian 12), 1.7 (Debian 13), 2.1 (Debian 13 with sid's containerd).
# Needs podman and the lab images (lab/lab.sh builds them) and the Debian archive
# (apt inside the containers). The containers are named mol-containerd-capture-*
# and removed on exit. Run from anywhere: ./tests/lab/capture-containerd-defaults.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/tests/unit/fixtures/containerd/real
PREFIX=${LAB_IMAGE_PREFIX:-localhost/gpunode-lab}
declare -A FLAVOUR=([1.6]=bookworm [1.7]=trixie [2.1]=trixie-c2)
names=()

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local name
  for name in "${names[@]}"; do podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

capture() {  # series
  local series=$1 flavour=${FLAVOUR[$1]} name=mol-containerd-capture-${FLAVOUR[$1]} dir=$OUT/$1
  podman exec "$name" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd >/tmp/apt.log 2>&1' \
    || { podman exec "$name" tail -n 20 /tmp/apt.log >&2; return 1; }
  mkdir -p "$dir"
  podman exec "$name" containerd --version >"$dir/version.txt"
  case "$(cut -d' ' -f3 "$dir/version.txt")" in
    "$series".*) ;;
    *) echo "capture: $flavour has $(cat "$dir/version.txt"), expected containerd $series" >&2; return 1 ;;
  esac
  podman exec "$name" containerd config default >"$dir/default.toml"
  podman exec "$name" cat /etc/containerd/config.toml >"$dir/package-config.toml"
  echo "capture: $series from $flavour: $(cut -d' ' -f3 "$dir/version.txt")"
}

for series in "${!FLAVOUR[@]}"; do
  name=mol-containerd-capture-${FLAVOUR[$series]}
  names+=("$name")
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  podman run -d --name "$name" --entrypoint sleep "$PREFIX-${FLAVOUR[$series]}" infinity >/dev/null
done
pids=()
for series in "${!FLAVOUR[@]}"; do
  capture "$series" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
