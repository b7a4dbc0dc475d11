"""examples/shop-api's manifest digest, pinned: a change that keeps the build's bytes keeps it.

The digests were taken at e1f1f06 (before the build engine was split into its
stage packages) from fresh copies (no ``.vega``), with the toolchain below,
and taken again when bundle format 3 made a bundle's digest its tree's
(``store.tree``): every route's bundle digest, hence the manifest's, changed,
and nothing else did (the compiled modules and the layer are the same bytes).
Under another toolchain the outputs differ legitimately, so these tests skip;
a change that means to alter the outputs (a new bundle format, a compiler
fix) bumps the toolchain and re-pins the digests here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vega_dag.bundle.layer import LockError
from vega_dag.compile.toolchain import Toolchain, current_toolchain
from vega_dag.pipeline import build

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop-api"

PINNED_TOOLCHAIN = Toolchain(
    implementation="cpython",
    version="3.11.7",
    magic="a70d0d0a",
    optimize=0,
    compiler="vega-dag-compile/1",
    bundle_format=3,
    steps=[],
)
#: The project as it is: 68 modules, 35 routes and the layer of requirements.lock.
WITH_LAYER = "blake3:888508eb3b387a025e47af51f00aa8317f94c76ac5c04e2cea474b35b6447312"
#: The same without its lock (no layer: nothing is installed).
WITHOUT_LAYER = "blake3:79f714f419992796bce99727cdf3e6b22db17c050b66d19e822cf264b6ae148e"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    active = current_toolchain()
    if active != PINNED_TOOLCHAIN:
        pytest.skip(
            "the digests are pinned for another toolchain: "
            + "; ".join(active.differences(PINNED_TOOLCHAIN))
        )
    copy = tmp_path / "shop-api"
    shutil.copytree(SHOP, copy, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    return copy


def test_shop_api_manifest_digest_is_pinned(shop):
    try:
        result = build(shop)
    except LockError as err:  # the layer's wheels come from the package index
        pytest.skip(f"the dependency layer could not be installed: {err}")
    assert (result.modules_compiled, len(result.routes)) == (68, 35)
    assert result.manifest == WITH_LAYER


def test_shop_api_manifest_digest_without_layer_is_pinned(shop):
    (shop / "requirements.lock").unlink()
    pyproject = shop / "pyproject.toml"
    text = pyproject.read_text()
    assert 'lock = "requirements.lock"\n' in text
    pyproject.write_text(text.replace('lock = "requirements.lock"\n', ""))

    result = build(shop)
    assert (result.modules_compiled, len(result.routes), result.layer) == (68, 35, None)
    assert result.manifest == WITHOUT_LAYER
