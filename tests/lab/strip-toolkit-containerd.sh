#!/bin/sh
# Removes the NVIDIA Container Toolkit and containerd, with what the roles wrote for them, from a lab
# node started from a saved image (scripts/controllers.sh) that had them: the controller legs and the
# molecule scenarios fleet and driver then start without them. On a bare node there is nothing to
# remove. Ends non-zero if either is left.
set -e
packages="nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1 containerd"
# shellcheck disable=SC2086 # a list of package names
installed=$(dpkg-query -W -f '${Package} ${Status}\n' $packages 2>/dev/null | awk '/ ok installed$/ {print $1}')
if [ -n "$installed" ]; then
  # shellcheck disable=SC2086
  apt-mark unhold $installed >/dev/null
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --allow-change-held-packages $installed >/dev/null
fi
[ ! -d /var/lib/containerd ] || find /var/lib/containerd -mindepth 1 -maxdepth 1 -exec rm -rf {} +  # a volume of the lab node: its content goes
rm -rf /etc/containerd /etc/nvidia-container-runtime /etc/cdi /var/run/cdi /var/tmp/gpunode-validate-* \
  /etc/apt/sources.list.d/gpunode-nvidia-container-toolkit.sources /etc/apt/keyrings/gpunode-nvidia-container-toolkit.gpg \
  /etc/udev/rules.d/71-gpunode-nvidia-dev-char.rules
! dpkg-query -W -f '${Status}\n' containerd nvidia-container-toolkit 2>/dev/null | grep -q ' ok installed'
