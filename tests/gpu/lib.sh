#!/usr/bin/env bash
# Shared set-up for the GPU-node scripts in tests/gpu/ (sourced).
# Makes ansible-core available (from .whl/ when the node has no network, as on
# the lent GPU machine; see README "Testing on a GPU node") and exposes this
# checkout as the collection gpunode.nvidia.
GPU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GPU_WORK=${GPU_WORK:-/tmp/gpunode-gpu}

gpu_setup() {
  mkdir -p "$GPU_WORK/collections/ansible_collections/gpunode"
  ln -sfn "$GPU_ROOT" "$GPU_WORK/collections/ansible_collections/gpunode/nvidia"
  export ANSIBLE_COLLECTIONS_PATH=$GPU_WORK/collections
  export ANSIBLE_ROLES_PATH=$GPU_ROOT/roles
  export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=ansible.builtin.default
  if ! command -v ansible-playbook >/dev/null; then
    if ! ls "$GPU_ROOT"/.whl/*.whl >/dev/null 2>&1; then
      echo "no ansible-playbook and no wheels in .whl/: pip install ansible-core first" >&2
      return 1
    fi
    python3 -m pip install -q --no-index --no-deps --target "$GPU_WORK/site" "$GPU_ROOT"/.whl/*.whl
    export PYTHONPATH=$GPU_WORK/site${PYTHONPATH:+:$PYTHONPATH} PATH=$GPU_WORK/site/bin:$PATH
  fi
  ansible --version | head -n 1
}

# cuda-bindings for the CUDA modules: from .whl/ (cuda_bindings-*.whl and cuda_pathfinder-*.whl for
# this node's Python) when python3 does not have it; the modules then import it through PYTHONPATH.
gpu_cuda_bindings() {
  if python3 -c 'import cuda.bindings.driver' 2>/dev/null; then
    echo "cuda-bindings: $(python3 -c 'import importlib.metadata as m; print(m.version("cuda-bindings"))')"
    return 0
  fi
  if ! ls "$GPU_ROOT"/.whl/cuda_bindings-*.whl >/dev/null 2>&1; then
    echo "no cuda-bindings in python3 and no cuda_bindings wheel in .whl/: pip install cuda-bindings first" >&2
    return 1
  fi
  python3 -m pip install -q --no-index --no-deps --target "$GPU_WORK/cuda-site" "$GPU_ROOT"/.whl/cuda_bindings-*.whl "$GPU_ROOT"/.whl/cuda_pathfinder-*.whl
  export PYTHONPATH=$GPU_WORK/cuda-site${PYTHONPATH:+:$PYTHONPATH}
  echo "cuda-bindings: $(python3 -c 'import importlib.metadata as m; print(m.version("cuda-bindings"))') (from .whl/)"
}
