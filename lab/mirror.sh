#!/usr/bin/env bash
# The lab's package mirror: a node of its own that serves test doubles of NVIDIA's
# container toolkit packages from an apt repository laid out like NVIDIA's, signed
# with keys made when the image is built, as an air-gapped site's mirror would be.
# Sourced by lab/lab.sh after images.sh. The image has its own recipe hash (this
# file, lab/mirror/ and what it takes from images.sh), so a change here never
# rebuilds the node images.

LAB_MIRROR_PORT=8080
LAB_MIRROR_VERSIONS=(1.19.0 1.20.0)
# Per build: two labs' `up` on one machine may both find the image out of date.
LAB_MIRROR_BUILD_DIR=${LAB_MIRROR_BUILD_DIR:-$LAB_BUILD_DIR-mirror.$$}
# Served over HTTP; the good tree is also a plain directory a test can podman cp
# into a node as a local (file:) repository.
LAB_MIRROR_ROOT=/srv/gpunode-mirror

lab_mirror_image() { echo "$LAB_IMAGE_PREFIX-mirror"; }
lab_mirror_name() { echo "$LAB_NAME_PREFIX-mirror"; }

lab_mirror_recipe_hash() {
  {
    echo "$LAB_PACKAGES"
    declare -f lab_debootstrap
    cd "$LAB_DIR" && find mirror.sh mirror -type f | LC_ALL=C sort | while read -r f; do
      echo "== $f"
      cat "$f"
    done
  } | sha256sum | cut -c1-16
}

lab_mirror_current() {
  local have
  have=$(podman image inspect --format '{{index .Labels "gpunode.lab.recipe"}}' \
    "$(lab_mirror_image)" 2>/dev/null) || return 1
  [ "$have" = "$(lab_mirror_recipe_hash)" ]
}

lab_build_mirror() {
  local dir=$LAB_MIRROR_BUILD_DIR/rootfs fpr start=$SECONDS
  if lab_mirror_current; then
    echo "lab: mirror image up to date"
    return 0
  fi
  echo "lab: building the mirror image (debootstrap bookworm, test-double packages, keys)"
  rm -rf "$LAB_MIRROR_BUILD_DIR"
  mkdir -p "$LAB_MIRROR_BUILD_DIR"
  # gpg signs, apt-ftparchive writes the indexes; python3 (in LAB_PACKAGES) serves.
  LAB_BUILD_DIR=$LAB_MIRROR_BUILD_DIR LAB_PACKAGES=$LAB_PACKAGES,gpg,gpg-agent,apt-utils \
    lab_debootstrap bookworm "$dir"
  : >"$dir/etc/machine-id"
  rm -f "$dir/var/lib/dbus/machine-id"
  cp -r "$LAB_DIR/mirror" "$dir/tmp/gpunode-mirror-src"
  if ! fpr=$(chroot "$dir" bash /tmp/gpunode-mirror-src/build-repo.sh /tmp/gpunode-mirror-src \
    "$LAB_MIRROR_ROOT" "${LAB_MIRROR_VERSIONS[@]}"); then
    echo "lab: building the mirror's packages failed" >&2
    return 1
  fi
  rm -rf "$dir/tmp/gpunode-mirror-src"
  sed "s/@PORT@/$LAB_MIRROR_PORT/" "$LAB_DIR/mirror/gpunode-mirror.service" \
    >"$dir/etc/systemd/system/gpunode-mirror.service"
  ln -s /etc/systemd/system/gpunode-mirror.service "$dir/etc/systemd/system/multi-user.target.wants/"
  chroot "$dir" apt-get clean
  tar -C "$dir" -c . | podman import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'STOPSIGNAL=SIGRTMIN+3' \
    --change "LABEL gpunode.lab.recipe=$(lab_mirror_recipe_hash)" \
    --change "LABEL gpunode.lab.mirror.fingerprint=$fpr" \
    --quiet - "$(lab_mirror_image)" >/dev/null
  rm -rf "$LAB_MIRROR_BUILD_DIR"
  echo "lab: built image $(lab_mirror_image) in $((SECONDS - start))s (key $fpr)"
}

lab_mirror_start() {
  local name
  name=$(lab_mirror_name)
  podman run -d --name "$name" --hostname "$name" --systemd=always \
    --label gpunode.lab=1 --label "gpunode.lab.prefix=$LAB_NAME_PREFIX" \
    --label gpunode.lab.role=mirror \
    "$(lab_mirror_image)" /lib/systemd/systemd >/dev/null
}

lab_mirror_ip() {  # -> this lab's running mirror's IP on podman's default network
  local name ip
  name=$(lab_mirror_name)
  [ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || return 1
  ip=$(podman inspect --format '{{.NetworkSettings.IPAddress}}' "$name")
  [ -n "$ip" ] && echo "$ip"
}

lab_mirror_url() {  # [good|other-key] -> the apt URL, in the form of NVIDIA's (with $(ARCH))
  local ip tree=${1:-good}
  case "$tree" in
    good) tree="" ;;
    other-key) tree=/other-key ;;
    *) echo "lab: mirror-url takes good or other-key, not '$tree'" >&2; return 2 ;;
  esac
  if ! ip=$(lab_mirror_ip); then
    echo "lab: no mirror running for $LAB_NAME_PREFIX (lab/lab.sh up starts it)" >&2
    return 1
  fi
  echo "http://$ip:$LAB_MIRROR_PORT$tree/libnvidia-container/stable/deb/\$(ARCH)"
}

lab_mirror_wait() {  # waits until the mirror answers on its IP, as the nodes reach it
  local name i url
  name=$(lab_mirror_name)
  lab_wait_booted "$name"
  url=$(lab_mirror_url good)
  url=${url%/stable/deb/*}/gpgkey
  for ((i = 0; i < 60; i++)); do
    podman exec "$name" python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$url" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "lab: the mirror $name does not answer at $url" >&2
  return 1
}

# The toolkit role's variables for this lab's mirror; nothing without one, or with
# LAB_TOOLKIT_SOURCE=nvidia (the role's defaults: NVIDIA's repository and key).
lab_mirror_up() {  # this lab's mirror alone (for nodes lab.sh does not start, such as molecule's)
  lab_build_mirror >&2
  if ! lab_mirror_ip >/dev/null; then
    podman rm -f -t 0 "$(lab_mirror_name)" >/dev/null 2>&1 || true
    lab_mirror_start
  fi
  lab_mirror_wait
  lab_mirror_url good
}

lab_mirror_vars() {
  local url fpr
  [ "${LAB_TOOLKIT_SOURCE:-mirror}" = mirror ] || return 0
  url=$(lab_mirror_url good 2>/dev/null) || return 0
  fpr=$(podman exec "$(lab_mirror_name)" cat "$LAB_MIRROR_ROOT/libnvidia-container/gpgkey.fingerprint")
  echo "container_toolkit_source: mirror"
  echo "container_toolkit_mirror_url: $url"
  echo "container_toolkit_mirror_key_url: ${url%/stable/deb/*}/gpgkey"
  echo "container_toolkit_key_fingerprint: \"$fpr\""
}
