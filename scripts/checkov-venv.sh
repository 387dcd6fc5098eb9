#!/usr/bin/env bash
# Create .venv-checkov, the tests' own venv with checkov (requirements/checkov.txt, every
# package pinned); safe to re-run: it is rebuilt only when the pins change (stamped like .venv).
# checkov stays out of .venv: it is about 290 MB and its pins would fight the controller's.
# tests/k8s_checks.py runs .venv-checkov/bin/checkov; scripts/test.sh calls this first.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/lib.sh"

VENV=$ROOT/.venv-checkov
stamp=$(sha256sum <"$ROOT/requirements/checkov.txt" | cut -c1-16)
if [ "$(cat "$VENV/.gpunode-stamp" 2>/dev/null)" != "$stamp" ]; then
  say "creating $VENV with the pinned checkov (about a minute)"
  rm -rf "$VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # (This machine's pip may warn about absent local indexes: harmless.)
  "$VENV/bin/pip" install -q -r "$ROOT/requirements/checkov.txt" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  "$VENV/bin/checkov" --version >/dev/null
  echo "$stamp" >"$VENV/.gpunode-stamp"
fi
