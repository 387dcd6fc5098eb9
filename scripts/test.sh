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

# pytest with its counts added to the run's totals; "no tests collected" (exit 5)
# is a failure here: every suite this script names must have tests.
run_pytest() {
  local log rc counts
  log=$(mktemp)
  # Called by step() with errexit off: leave it as found, or a failing suite
  # would end the whole run here instead of being counted.
  "${PYTEST_PYTHON[@]:-python}" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  counts=$(tail -n 1 "$log")
  rm -f "$log"
  passed=$((passed + $(count passed "$counts")))
  failed=$((failed + $(count 'failed|errors?' "$counts")))
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests in $*" >&2
    failed=$((failed + 1))
    return 1
  fi
  return "$rc"
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
  local s rc=0 log
  for s in ${MOLECULE_SCENARIOS:-$(ls molecule)}; do
    [ -f "molecule/$s/molecule.yml" ] || continue
    log=$(mktemp)
    say "molecule test -s $s"
    if molecule test -s "$s" >"$log" 2>&1; then
      echo "    molecule $s: ok"
    else
      echo "    molecule $s: FAILED; its log:"
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
step "lab tests (podman nodes)" run_pytest tests/lab
controller_matrix
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
