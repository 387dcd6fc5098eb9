"""Unit-test set-up: make the checkout importable as ansible_collections.gpunode.nvidia."""

import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")

if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "gpunode", "nvidia", "plugins")):
    raise pytest.UsageError("collection link missing: run scripts/setup.sh first")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
