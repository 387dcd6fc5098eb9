#!/usr/bin/env bash
# Download, on a machine with an index, everything the GPU scripts need on a GPU machine without
# network, into .whl/ (ignored by git): ansible-core and its dependencies, and cuda-bindings with
# cuda-pathfinder, for the GPU machine's Python. Then carry .whl/ there (the device tool's carry).
#   tests/gpu/wheels.sh [PYTHON_VERSION [CUDA_MAJOR]]     (defaults: 3.12 13, the lent H100/H200 machine)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
py=${1:-3.12}
cuda=${2:-13}
core=$(sed -n 's/^ansible-core==//p' "$root/requirements/controllers/2.21.txt")
pip=(python3 -m pip)
[ -x "$root/.venv/bin/python" ] && pip=("$root/.venv/bin/python" -m pip)
mkdir -p "$root/.whl"
"${pip[@]}" download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$root/.whl" "ansible-core==$core" resolvelib cryptography cffi pycparser jinja2 markupsafe pyyaml packaging \
  "cuda-bindings==$cuda.*" cuda-pathfinder
ls -l "$root/.whl"
du -sh "$root/.whl"
