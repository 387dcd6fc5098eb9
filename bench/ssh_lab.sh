#!/usr/bin/env bash
# Puts the lab's nodes behind SSH for bench/site_rerun.py: fleets are reached over SSH, and the
# podman connection costs more per task. In each node of the running lab (LAB_NAME_PREFIX): sshd
# from Debian's archive, root's authorized key; then an inventory directory whose second file gives
# every node ansible_connection ssh to its address on podman's bridge (a local address of this
# machine, like a 127.0.0.1 port), with the lab's own inventory first for everything else.
#   LAB_NAME_PREFIX=bench bash bench/ssh_lab.sh OUT_DIR      then  --inventory OUT_DIR/inventory
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: bench/ssh_lab.sh OUT_DIR}
mkdir -p "$out/inventory"
out=$(cd "$out" && pwd)
[ -f "$out/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$out/id_ed25519"
inventory=$out/inventory
cp "$(bash "$ROOT/lab/lab.sh" inventory)" "$inventory/00-lab.yml"
nodes=$(grep -oE "^ +${LAB_NAME_PREFIX:-gpunode-lab}-[a-z0-9-]+-[0-9]+:" "$inventory/00-lab.yml" | tr -d ' :' | sort -u)
{
  echo "# Written by bench/ssh_lab.sh: the lab's nodes over SSH."
  echo "all:"
  echo "  hosts:"
} >"$inventory/10-ssh.yml"
for node in $nodes; do
  podman exec "$node" sh -ec '
    command -v sshd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null; }
    mkdir -p /root/.ssh && chmod 0700 /root/.ssh
    systemctl enable --now ssh >/dev/null 2>&1'
  podman exec -i "$node" sh -c 'cat >/root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys' <"$out/id_ed25519.pub"
  address=$(podman inspect --format '{{.NetworkSettings.IPAddress}}' "$node")
  cat >>"$inventory/10-ssh.yml" <<HOST
    $node:
      ansible_connection: ssh
      ansible_host: $address
      ansible_user: root
      ansible_ssh_private_key_file: $out/id_ed25519
      ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
HOST
done
echo "$inventory"
