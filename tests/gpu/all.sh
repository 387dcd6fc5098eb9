#!/usr/bin/env bash
# Every GPU check of this repository in one run, for a GPU machine whose time is short: each
# tests/gpu script, then each GPU benchmark, with what it printed and its result, and a summary.
# Prepare .whl/ first on a machine with an index (tests/gpu/wheels.sh) and carry it along.
#   tests/gpu/all.sh
# Exit 0 when none failed and at least one passed; a script that could not run (exit 2) is counted apart, never as a pass.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -A results
scripts=(tests/gpu/preflight.sh tests/gpu/nvml.sh tests/gpu/cuda.sh tests/gpu/driver_preinstalled.sh tests/gpu/toolkit_cdi.sh
         bench/nvml_info_vs_smi.sh bench/cuda_stage_vs_smi.sh)
for script in "${scripts[@]}"; do
  echo "===== $script"
  start=$(date +%s)
  bash "$root/$script"
  rc=$?
  case $rc in 0) results[$script]="passed" ;; 2) results[$script]="not run" ;; *) results[$script]="FAILED (rc $rc)" ;; esac
  echo "===== $script: ${results[$script]} in $(( $(date +%s) - start )) s"
done
echo "===== summary"
failed=0 passed=0
for script in "${scripts[@]}"; do
  echo "  $script: ${results[$script]}"
  case ${results[$script]} in passed) passed=$((passed + 1)) ;; "not run") ;; *) failed=1 ;; esac
done
echo "  $passed of ${#scripts[@]} passed"
# 1: one failed; 2: none failed but none passed either (nothing could run here), which is no pass.
[ $failed = 0 ] || exit 1
[ $passed -gt 0 ] || exit 2
