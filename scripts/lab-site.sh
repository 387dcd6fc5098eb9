#!/usr/bin/env bash
# The main job on the built-in lab: set up this machine, start the lab nodes,
# run playbooks/site.yml against them and end with each node's report.
#   scripts/lab-site.sh [extra ansible-playbook args]
#   LAB_NODES="bookworm:2,trixie:1" (default) chooses the nodes; lab/lab.sh down removes them.
#   LAB_NAME_PREFIX and LAB_STATE choose the lab (see lab/lab.sh): another prefix, another lab.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/lib.sh"
controller_ready "$@"
bash lab/lab.sh up "${LAB_NODES:-bookworm:2,trixie:1}"
say "ansible-playbook playbooks/site.yml -i $(bash lab/lab.sh inventory)"
ansible-playbook playbooks/site.yml -i "$(bash lab/lab.sh inventory)" "$@"
