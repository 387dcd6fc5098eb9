#!/usr/bin/env bash
# Lab node images: Debian rootfs from debootstrap, imported into podman.
# Sourced by lab/lab.sh; every image carries the hash of its recipe as a label,
# so a build is skipped while the recipe is unchanged.

LAB_IMAGE_PREFIX=${LAB_IMAGE_PREFIX:-localhost/gpunode-lab}
LAB_BUILD_DIR=${LAB_BUILD_DIR:-/var/tmp/gpunode-lab-build}
LAB_PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates,kmod

# Image flavour -> debootstrap suite. trixie-c2 is trixie whose apt may take
# containerd 2.x from sid (nothing else): trixie itself ships containerd 1.7.
declare -A LAB_SUITE=([bookworm]=bookworm [trixie]=trixie [trixie-c2]=trixie)

lab_recipe_hash() {
  # Everything that shapes an image: this file and the rootfs overlay.
  {
    cat "$LAB_DIR/images.sh"
    find "$LAB_DIR/rootfs" -type f -print0 | sort -z | xargs -0 cat
  } | sha256sum | cut -c1-16
}

lab_image_current() {  # flavour -> 0 when the image exists and matches the recipe
  local have
  have=$(podman image inspect --format '{{index .Labels "gpunode.lab.recipe"}}' \
    "$LAB_IMAGE_PREFIX-$1" 2>/dev/null) || return 1
  [ "$have" = "$(lab_recipe_hash)" ]
}

lab_debootstrap() {  # suite dir
  local suite=$1 dir=$2 log="$LAB_BUILD_DIR/$1.log"
  rm -rf "$dir"
  if ! debootstrap --variant=minbase --include="$LAB_PACKAGES" "$suite" "$dir" >"$log" 2>&1; then
    echo "lab: debootstrap $suite failed; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}

lab_prepare_rootfs() {  # flavour dir
  local flavour=$1 dir=$2
  # Generic per-node identity: systemd creates a fresh machine-id at first boot.
  : >"$dir/etc/machine-id"
  rm -f "$dir/var/lib/dbus/machine-id"
  cp -a "$LAB_DIR/rootfs/common/." "$dir/"
  # Enable the components that carry NVIDIA's driver, keeping debootstrap's mirror.
  sed -i -E 's/^(deb .*) main$/\1 main contrib non-free non-free-firmware/' "$dir/etc/apt/sources.list"
  if [ "${LAB_SUITE[$flavour]}" = trixie ]; then
    # No loadable modules in a container: this unit would leave trixie "degraded".
    ln -sf /dev/null "$dir/etc/systemd/system/systemd-modules-load.service"
  fi
  if [ "$flavour" = trixie-c2 ]; then
    cp -a "$LAB_DIR/rootfs/trixie-c2/." "$dir/"
    sed -E 's/^deb (\S+) trixie (.*)$/deb [check-valid-until=no] \1 sid \2/;t;d' "$dir/etc/apt/sources.list" \
      >"$dir/etc/apt/sources.list.d/sid.list"
  fi
  # Fill the apt lists once at build time so nodes start ready for apt.
  chroot "$dir" apt-get update -qq >/dev/null
  chroot "$dir" apt-get clean
}

lab_import() {  # flavour dir
  local flavour=$1 dir=$2
  tar -C "$dir" -c . | podman import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'STOPSIGNAL=SIGRTMIN+3' \
    --change "LABEL gpunode.lab.recipe=$(lab_recipe_hash)" \
    --change "LABEL gpunode.lab.suite=${LAB_SUITE[$flavour]}" \
    --quiet - "$LAB_IMAGE_PREFIX-$flavour" >/dev/null
}

lab_build_images() {  # flavours...
  local todo=() f suites=() s pids=()
  for f in "$@"; do
    lab_image_current "$f" || todo+=("$f")
  done
  if [ ${#todo[@]} -eq 0 ]; then
    echo "lab: images up to date ($*)"
    return 0
  fi
  mkdir -p "$LAB_BUILD_DIR"
  # One debootstrap per suite, in parallel; flavours of a suite share it.
  for f in "${todo[@]}"; do
    s=${LAB_SUITE[$f]}
    [[ " ${suites[*]} " == *" $s "* ]] || suites+=("$s")
  done
  echo "lab: debootstrap ${suites[*]} (about a minute)"
  for s in "${suites[@]}"; do
    lab_debootstrap "$s" "$LAB_BUILD_DIR/$s.base" &
    pids+=($!)
  done
  for s in "${pids[@]}"; do wait "$s" || return 1; done
  for f in "${todo[@]}"; do
    s=${LAB_SUITE[$f]}
    rm -rf "${LAB_BUILD_DIR:?}/$f"
    cp -a "$LAB_BUILD_DIR/$s.base" "$LAB_BUILD_DIR/$f"
    lab_prepare_rootfs "$f" "$LAB_BUILD_DIR/$f"
    lab_import "$f" "$LAB_BUILD_DIR/$f"
    rm -rf "${LAB_BUILD_DIR:?}/$f"
    echo "lab: built image $LAB_IMAGE_PREFIX-$f"
  done
  rm -rf "$LAB_BUILD_DIR"
}
