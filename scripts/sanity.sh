#!/usr/bin/env bash
# ansible-test sanity on this checkout (its tracked and new, not ignored, files).
# ansible-test needs the collection at .../ansible_collections/gpunode/nvidia inside
# a git repository, so it runs on a committed copy under .cache/sanity.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/lib.sh"
use_venv

# Seed ansible-test's venvs without its download host (see get_pip.py).
pipver=$(python -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
from types import SimpleNamespace as N; print(g(N(version="")).get("pip"))')
cache=${HOME:-/root}/.ansible/test/cache
mkdir -p "$cache"
cp "$ROOT/scripts/ansible-test/get_pip.py" "$cache/get_pip_${pipver//./_}.py"

copy=$ROOT/.cache/sanity/ansible_collections/gpunode/nvidia
rm -rf "$copy"
mkdir -p "$copy"
# Tracked and new files as they are in the work tree (deleted ones are skipped).
git -C "$ROOT" ls-files -z --cached --others --exclude-standard | (cd "$ROOT" && while IFS= read -r -d '' f; do
  if [ -e "$f" ] || [ -L "$f" ]; then cp --parents -P "$f" "$copy/"; fi
done)
cd "$copy"
git init -q
git add -A
git -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity
pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --python "$pyver" --color no "$@"
