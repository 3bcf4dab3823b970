"""Collect the pytest-benchmark suite that lives inside benchmarks/bench_hamming.py (the file is
also a stand-alone side-by-side script, hence not named test_*.py)."""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    # A path named on the command line is collected by pytest itself; don't collect it twice.
    if file_path.name == "bench_hamming.py" and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
