"""Benchmarks: pytest-benchmark, each vega-dag figure beside its peer tool's.

Run them with `make bench`. With VEGA_BENCH_SMOKE=1 (what CI runs) every
benchmark runs once on a small slice, so they keep working without costing
CI minutes; their timings mean nothing then.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benches.realcode import REAL_CODEBASE, SMOKE_CODEBASE, python_files, unpacked_wheel

SMOKE = os.environ.get("VEGA_BENCH_SMOKE") == "1"

# The rows measure what they name: one-shot unless a row says it runs with the
# daemon (and then it starts and stops it). A daemon a row's first build
# started exits soon after the run even if its fixture could not stop it.
os.environ.setdefault("VEGA_DAG_DAEMON", "0")
os.environ.setdefault("VEGA_DAG_DAEMON_IDLE_TIMEOUT", "120")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.benchmark)


@pytest.fixture(scope="session")
def real_py_files() -> list[Path]:
    # Smoke runs take a small but whole package: a slice of a code base would
    # import files left out of it, which a build rightly refuses.
    root = unpacked_wheel(*(SMOKE_CODEBASE if SMOKE else REAL_CODEBASE))
    files = python_files(root)
    assert SMOKE or len(files) >= 10_000, f"expected ≥ 10,000 .py files, found {len(files)}"
    return files


@pytest.fixture(scope="session")
def b3sum() -> str:
    path = shutil.which("b3sum")
    if path is None:
        pytest.fail("b3sum is not installed: run `make bench-deps`")
    return path
