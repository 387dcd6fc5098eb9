#!/bin/sh
# podman for a controller that runs in a container (the matrix legs whose ansible-core needs
# a newer Python than this machine's): the host's own podman, in the host's namespaces
# (the container shares its PID namespace: GPUNODE_HOST_PID names a host process whose
# namespaces are entered, the script that started the container).
# `podman mount` is refused: the path it returns exists only on the host, and the podman
# connection plugin then copies files with `podman cp` (paths under the checkout, which
# the container sees at the same place).
for arg in "$@"; do
  case $arg in
    mount) echo "host-podman: mount is not offered to a containerised controller" >&2; exit 125 ;;
    -*) ;;
    *) break ;;
  esac
done
exec nsenter --target "${GPUNODE_HOST_PID:?the PID of a process in the host namespaces}" --mount --uts --ipc --net --pid -- podman "$@"
