from __future__ import annotations

from pathlib import Path

import pytest

from tests.rollout.helpers import stop_fleet, write_project


@pytest.fixture
def project(tmp_path: Path):
    """A 3-region example project; its regions are stopped however the test ends."""
    root = write_project(tmp_path / "proj")
    yield root
    stop_fleet(root)
