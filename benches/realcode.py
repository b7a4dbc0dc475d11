"""Real code bases from the package registry, downloaded once and unpacked.

Benchmarks run on real trees, not synthetic ones. The ansible 10.7.0 wheel
(the community collections) holds 15,576 Python files, all of which CPython
3.11 compiles. (The homeassistant wheel was the first candidate: its 2024.1
release, the last that 3.11 compiles, has only 6,454.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

DATA = Path(os.environ.get("VEGA_BENCH_DATA", Path(__file__).parent / ".data"))
REAL_CODEBASE = ("ansible", "10.7.0")
#: What smoke runs (CI) use instead: small, whole, pure Python.
SMOKE_CODEBASE = ("click", "8.1.7")


def unpacked_wheel(name: str, version: str) -> Path:
    """The unpacked wheel of ``name==version`` (downloaded on first use)."""
    target = DATA / f"{name}-{version}"
    done = target / ".unpacked"
    if done.exists():
        return target
    wheels = DATA / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = list(wheels.glob(f"{name}-{version}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(wheels),
                f"{name}=={version}",
            ],
            check=True,
        )
        found = list(wheels.glob(f"{name}-{version}-*.whl"))
    with zipfile.ZipFile(found[0]) as zf:
        zf.extractall(target)
    done.touch()
    return target


def python_files(root: Path) -> list[Path]:
    """Every .py file under ``root``, sorted."""
    files = sorted(root.rglob("*.py"))
    return files
