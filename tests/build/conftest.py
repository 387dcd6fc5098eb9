"""tests/build's set-up: the helpers in tests/ (k8s_checks) are importable, as they are for tests/unit."""

import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
