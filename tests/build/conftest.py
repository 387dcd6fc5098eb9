"""tests/build's set-up: the helpers in tests/ (k8s_checks) are importable, as they are for tests/unit."""

import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# The checkout as ansible_collections.gpunode.nvidia (scripts/setup.sh makes the link), for the
# tests that build the Kubernetes roles' objects with the collection's own code.
COLLECTIONS = os.path.join(os.path.dirname(TESTS), ".cache", "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
