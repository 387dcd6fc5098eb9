#!/usr/bin/env bash
# Set up everything the tests need on this Debian/Ubuntu machine, then run them all:
# lint, ansible-test sanity, collection build, unit tests, entry scripts, lab tests, the
# controller matrix (every other ansible-core line: scripts/controllers.sh), molecule scenarios.
#   scripts/test.sh                 everything
#   MOLECULE_SCENARIOS="preflight" scripts/test.sh   only these scenarios
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/lib.sh"
controller_ready "$@"
# checkov's own venv (.venv-checkov), for the manifest policy checks (tests/k8s_checks.py).
bash "$ROOT/scripts/checkov-venv.sh"
bash lab/lab.sh build
# Packages only the tests need (setup.sh installs what users need): sudo, for the
# test of the entry scripts' re-run through sudo (tests/scripts); gnupg, whose gpg the
# OpenPGP unit tests compare our fingerprints with.
apt_install_missing sudo gnupg

passed=0
failed=0
failures=()
step() {  # name command... : runs, times and records one step; keeps going on failure
  local name=$1 start rc
  shift
  say "$name"
  start=$(date +%s)
  set +e
  "$@"
  rc=$?
  set -e
  printf '    %s: %s in %ss\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" "$(($(date +%s) - start))"
  [ $rc -eq 0 ] || failures+=("$name")
}

count() {  # WORD-regex TEXT -> the sum of the numbers before WORD in TEXT
  { grep -oE "[0-9]+ ($1)" <<<"$2" || true; } | awk '{s += $1} END {print s + 0}'
}

# Adds the counts on a pytest log's last line to the run's totals and passes pytest's exit
# status on; "no tests collected" (exit 5) is a failure here: every suite this script names
# must have tests.
count_pytest() {  # RC LOG WHAT
  local counts
  counts=$(tail -n 1 "$2")
  passed=$((passed + $(count passed "$counts")))
  failed=$((failed + $(count 'failed|errors?' "$counts")))
  if [ "$1" -eq 5 ]; then
    echo "pytest collected no tests in $3" >&2
    failed=$((failed + 1))
    return 1
  fi
  return "$1"
}

# pytest with its counts added to the run's totals.
run_pytest() {
  local log rc
  log=$(mktemp)
  # Called by step() with errexit off: leave it as found, or a failing suite
  # would end the whole run here instead of being counted.
  "${PYTEST_PYTHON[@]:-python}" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  count_pytest "$rc" "$log" "$*" || rc=$?
  rm -f "$log"
  return "$rc"
}

# The fault-injection test (tests/lab/test_faults.py: 7 minutes alone, most of them DKMS
# builds and waits on them) runs in the background beside the controller matrix, whose legs
# mostly wait on one ansible run each: the two share the cores instead of taking turns. It
# has a lab of its own (prefix, state, mirror).
FAULTS_LOG=$(mktemp)
faults_start() {
  (
    set +e
    # Bounded: a hung fault leaves the rest of the run its time.
    timeout 2400 python -m pytest -q -p no:cacheprovider tests/lab/test_faults.py >"$FAULTS_LOG" 2>&1
    echo $? >"$FAULTS_LOG.rc"
  ) &
  FAULTS_PID=$!
}
faults_result() {
  wait "$FAULTS_PID"
  cat "$FAULTS_LOG"
  count_pytest "$(cat "$FAULTS_LOG.rc" 2>/dev/null || echo 1)" "$FAULTS_LOG" tests/lab/test_faults.py
}

# A leg of the controller matrix runs pytest with its own Python (LEG_PY, set by the leg).
PYTEST_PYTHON=()
leg_counted() {
  local rc=0
  PYTEST_PYTHON=("${LEG_PY[@]}")
  run_pytest "$@" || rc=$?
  PYTEST_PYTHON=()
  return $rc
}

# shellcheck source=scripts/controllers.sh
. "$ROOT/scripts/controllers.sh"
PYTEST_RUNNER=leg_counted
legs=()
controller_matrix() {
  local line before
  for line in $(controller_lines); do
    before=${#failures[@]}
    step "controller matrix: ansible-core $line" controller_leg "$line"
    legs+=("$line:$([ ${#failures[@]} -eq "$before" ] && echo ok || echo FAILED)")
  done
}

molecule_all() {
  local s rc=0 log start
  # The driver scenario's bookworm node starts from the node tests/lab/test_site_twice.py saved
  # after its real DKMS build (molecule/driver/molecule.yml), when that image is up to date.
  # The fleet scenario's nodes start from that image and from its Debian 13 twin.
  if driver_image_current; then
    export GPUNODE_MOLECULE_DRIVER_IMAGE=$DRIVER_IMAGE_PREFIX-$LEG_FLAVOUR GPUNODE_FLEET_BOOKWORM_IMAGE=$DRIVER_IMAGE_PREFIX-$LEG_FLAVOUR
  fi
  if LEG_FLAVOUR=trixie driver_image_current; then
    export GPUNODE_FLEET_TRIXIE_IMAGE=$DRIVER_IMAGE_PREFIX-trixie
  fi
  for s in ${MOLECULE_SCENARIOS:-$(ls molecule)}; do
    [ -f "molecule/$s/molecule.yml" ] || continue
    log=$(mktemp)
    say "molecule test -s $s"
    start=$(date +%s)
    if molecule test -s "$s" >"$log" 2>&1; then
      echo "    molecule $s: ok in $(($(date +%s) - start))s"
    else
      echo "    molecule $s: FAILED in $(($(date +%s) - start))s; its log:"
      cat "$log"
      rc=1
    fi
    # The verifier is pytest-testinfra: count its results with the rest.
    local line
    line=$(grep -aoE '=+ [0-9]+ passed.*' "$log" | tail -n 1 || true)
    passed=$((passed + $(count passed "$line")))
    failed=$((failed + $(count 'failed|errors?' "$line")))
    [ -n "$line" ] || { echo "    molecule $s: no verifier results" >&2; rc=1; }
    rm -f "$log"
  done
  return $rc
}

step "ruff" ruff check .
step "yamllint" yamllint -s .
step "ansible-lint (production profile)" ansible-lint
step "ansible-test sanity" bash scripts/sanity.sh
step "unit tests" run_pytest tests/unit
step "collection build and docs" run_pytest tests/build
step "entry scripts (root, sudo)" run_pytest tests/scripts
step "lab tests (podman nodes)" run_pytest tests/lab --ignore=tests/lab/test_faults.py
say "lab fault injection: started in the background, beside the controller matrix"
faults_start
controller_matrix
step "lab fault injection (its wait after the controller matrix)" faults_result
step "molecule scenarios" molecule_all

say "summary"
main_ok=ok
for name in "${failures[@]}"; do [[ $name == "controller matrix: "* ]] || main_ok=FAILED; done
echo "ansible-core lines run:"
echo "    $(sed -n 's/^ansible-core==//p' requirements/controller.txt) (main pin, every step): $main_ok"
for leg in "${legs[@]}"; do
  echo "    $(sed -n 's/^ansible-core==//p' "requirements/controllers/${leg%%:*}.txt") (controller matrix: unit tests, syntax, site.yml converge + re-run): ${leg#*:}"
done
if [ ${#failures[@]} -gt 0 ]; then
  echo "failed steps: ${failures[*]}"
  failed=$((failed > 0 ? failed : 1))
fi
echo "gpunode tests: $passed passed, $failed failed"
[ ${#failures[@]} -eq 0 ]
