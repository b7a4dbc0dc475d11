"""A developer machine builds the source a CI runner built, against the shared S3 cache in
the hub, and compiles nothing (issue 12 item 4's last sentence)."""

from __future__ import annotations

import os
import shutil
import time

from tests.examples import SHOP
from tests.multihost.helpers import vega_on


def _copy(tmp_path, name):
    root = tmp_path / name / "shop-api"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    # As tests/store/test_remote_cache.py: the layer's wheels would come from the index.
    (root / "requirements.lock").unlink()
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('lock = "requirements.lock"\n', ""))
    return root


def test_the_developer_machine_compiles_nothing_the_ci_runner_built(cluster, tmp_path):
    store = f"s3://vega-cache/multihost-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    ci, dev = _copy(tmp_path, "ci"), _copy(tmp_path, "dev")
    first = vega_on(cluster, "ci", "build", str(ci), "--store", store)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "(68 modules compiled, 0 from cache" in first.stdout

    second = vega_on(cluster, "dev", "build", str(dev), "--explain", VEGA_DAG_STORE=store)
    assert second.returncode == 0, second.stderr + second.stdout
    assert "(0 modules compiled, 68 from cache" in second.stdout
    assert "68 compiled modules fetched from the remote cache" in second.stdout
