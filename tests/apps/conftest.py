"""A wheel cache for the apps whose frameworks come from the package registry.

A test's project pins its dependencies in its lock, and its build installs
them into the dependency layer with pip (bundle/layer.py), as a user's build
would. Each test has a store of its own, so without this every test would
download its wheels again: ``offline_wheels`` downloads a lock's pins once
into pytest's cache directory (kept between runs of a checkout; a fresh
clone, as CI's, downloads once per run) and points the test's pip at that
directory alone (``PIP_NO_INDEX``), so a layer build is a local install.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from vega_dag.bundle.layer import read_lock


@pytest.fixture
def offline_wheels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    cache = Path(request.config.cache.mkdir("layer-wheels"))

    def use(lock: Path) -> list[tuple[str, str]]:
        pins = read_lock(lock)
        marker = cache / ("pins-" + hashlib.sha256(repr(pins).encode()).hexdigest()[:16])
        if not marker.exists():
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--dest",
                    str(cache),
                    *(f"{name}=={version}" for name, version in pins),
                ],
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stderr
            marker.write_text("\n".join(f"{n}=={v}" for n, v in pins) + "\n")
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", str(cache))
        monkeypatch.delenv("PIP_INDEX_URL", raising=False)
        return pins

    return use
