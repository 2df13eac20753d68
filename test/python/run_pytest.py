#!/usr/bin/env python3
"""Runs the attn_mlir pytest suite: run_pytest.py TEST_DIR [pytest args].

Exits 77 (ctest's SKIP_RETURN_CODE) when numpy or pytest cannot be imported,
so the suite is skipped rather than failed on machines without them;
otherwise exits with pytest's status.
"""
import sys

try:
    import numpy  # noqa: F401
    import pytest
except ImportError as e:
    print(f"SKIP: the Python tests need numpy and pytest ({e})")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rs", sys.argv[1],
                      *sys.argv[2:]]))
