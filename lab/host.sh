#!/usr/bin/env bash
# Host settings for podman systemd nodes, applied only where this host needs
# them (a normal cgroup-v2 host with its own systemd needs none). Sourced by lab.sh.

LAB_PODMAN_CONF=${LAB_PODMAN_CONF:-/etc/containers/containers.conf.d/50-gpunode-lab.conf}

lab_host_setup() {
  local missing=() c containers=() engine=() hard_nofile hard_nproc want
  for c in podman debootstrap; do command -v "$c" >/dev/null || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "lab: missing ${missing[*]}; run scripts/setup.sh (or apt-get install podman runc debootstrap)" >&2
    exit 1
  fi
  # Hybrid/v1 cgroups: crun refuses them and systemd needs its own cgroup namespace.
  if [ ! -e /sys/fs/cgroup/cgroup.controllers ]; then
    containers+=('cgroupns = "private"')
    engine+=('runtime = "runc"')
  fi
  # Without CAP_SYS_RESOURCE podman cannot raise the nofile limit to its default.
  hard_nofile=$(ulimit -Hn)
  # nproc above 32768 was refused here even below the hard limit (runc setrlimit EPERM).
  hard_nproc=$(ulimit -Hu)
  [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
  if [ "$hard_nofile" != unlimited ] && [ "$hard_nofile" -lt 1048576 ]; then
    containers+=("default_ulimits = [\"nofile=$hard_nofile:$hard_nofile\", \"nproc=$hard_nproc:$hard_nproc\"]")
  fi
  if [ ${#containers[@]} -gt 0 ] || [ ${#engine[@]} -gt 0 ]; then
    want=$(
      echo "# Written by gpunode lab/host.sh: only the settings this host needs."
      if [ ${#containers[@]} -gt 0 ]; then echo "[containers]"; printf '%s\n' "${containers[@]}"; fi
      if [ ${#engine[@]} -gt 0 ]; then echo "[engine]"; printf '%s\n' "${engine[@]}"; fi
    )
    if [ "$(cat "$LAB_PODMAN_CONF" 2>/dev/null)" != "$want" ]; then
      mkdir -p "$(dirname "$LAB_PODMAN_CONF")"
      printf '%s\n' "$want" >"$LAB_PODMAN_CONF"
      echo "lab: wrote podman settings for this host to $LAB_PODMAN_CONF"
    fi
  fi
  # Each systemd node takes several inotify instances; 128 boots only ~18 nodes.
  if [ "$(sysctl -n fs.inotify.max_user_instances)" -lt 1024 ]; then
    sysctl -qw fs.inotify.max_user_instances=1024
    echo "lab: raised fs.inotify.max_user_instances to 1024 (until reboot)"
  fi
}
