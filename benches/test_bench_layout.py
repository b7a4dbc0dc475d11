"""A region's load of a deployment: the extracted tree against one zip for zipimport.

Group ``region-load-35`` (see docs/performance.md): a fresh interpreter loads
the 35-route deployment of examples/shop-api with package data added
(templates, JSON and SQL files in its packages, read by a route at import
time): it verifies the deployment's code as laid out (``regions.layout``:
the tree against its listing, or the zip against its digest), puts it on
``sys.path`` and imports every route, as a region's worker does before it
serves. ``load_tree`` is what regions do; ``load_zip`` the zip layout they
used before.

``layout-35`` measures laying the deployment out from the store the first
time (every region's first prefetch of it), both ways.

With VEGA_BENCH_SMOKE=1 each runs once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.examples import LEFTOVERS, SHOP

import vega_dag
from benches.conftest import SMOKE
from vega_dag.pipeline import build
from vega_dag.regions.layout import ensure_tree, merged_zip, remove_tree
from vega_dag.regions.worker import load_manifest
from vega_dag.store.objects import ObjectStore

ROUNDS = 1 if SMOKE else 15
ENV = {**os.environ, "PYTHONPATH": str(Path(vega_dag.__file__).resolve().parent.parent)}

#: Package data the example does not have: what a real service carries.
DATA = {
    "lib/templates/receipt.html": "<h1>{{ order }}</h1>\n" * 40,
    "lib/templates/email/shipped.txt": "Your order {order} has shipped.\n" * 10,
    "lib/data/currencies.json": '{"EUR": 2, "USD": 2, "JPY": 0}\n',
    "models/schema/orders.sql": "create table orders (id integer primary key);\n" * 20,
    "services/rates/carriers.json": '{"dhl": 1.0, "ups": 1.1}\n' * 20,
}
#: A module every route imports (lib.config) reads a file at import time.
READER = (
    "\nimport json as _json\nimport importlib.resources as _res\n"
    "CURRENCIES = _json.loads((_res.files('lib') / 'data/currencies.json').read_text())\n"
)

LOAD = """
import importlib, sys, time
from pathlib import Path
from vega_dag.regions import layout
from vega_dag.regions.worker import load_manifest
from vega_dag.store.objects import ObjectStore
store_root, fleet, manifest_digest, kind = sys.argv[1:]
store = ObjectStore(Path(store_root))
manifest = load_manifest(store, manifest_digest)
if kind == "tree":
    path = layout.ensure_tree(store, Path(fleet), manifest_digest, manifest)
else:
    path = layout.merged_zip(store, Path(fleet), manifest_digest, manifest)
sys.path.insert(0, str(path))
importlib.invalidate_caches()
for route in manifest.routes:
    importlib.import_module(route.module)
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("layout") / "shop-api"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(*LEFTOVERS))
    for rel, text in DATA.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    config = root / "lib" / "config.py"
    config.write_text(config.read_text() + READER)
    result = build(root)
    assert len(result.routes) == 35
    return root / ".vega", result.manifest


def load(store: Path, manifest: str, kind: str) -> None:
    fleet = store / "fleet"
    subprocess.run(
        [sys.executable, "-c", LOAD, str(store), str(fleet), manifest, kind],
        env=ENV,
        check=True,
    )


@pytest.mark.benchmark(group="region-load-35")
@pytest.mark.parametrize("kind", ["tree", "zip"])
def test_load(benchmark, deployment, kind):
    store, manifest = deployment
    load(store, manifest, kind)  # laid out once, as by the region's prefetch
    benchmark.pedantic(load, args=(store, manifest, kind), rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="layout-35")
@pytest.mark.parametrize("kind", ["tree", "zip"])
def test_layout(benchmark, deployment, kind):
    store, manifest = deployment
    fleet = store / f"fleet-{kind}"

    def fresh() -> tuple[tuple, dict]:
        remove_tree(fleet)
        return (), {}

    def lay_out() -> None:
        s = ObjectStore(store)
        m = load_manifest(s, manifest)
        if kind == "tree":
            ensure_tree(s, fleet, manifest, m)
        else:
            merged_zip(s, fleet, manifest, m)

    benchmark.pedantic(lay_out, setup=fresh, rounds=ROUNDS, iterations=1)
