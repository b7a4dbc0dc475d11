"""The Rust TOML reader agrees with tomllib on configuration files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vega_dag import _core

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [ROOT / "pyproject.toml", ROOT / "examples/shop-api/pyproject.toml", ROOT / "Cargo.toml"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_agrees_with_tomllib(path: Path):
    text = path.read_text()
    assert _core.parse_toml(text) == tomllib.loads(text)


def test_scalars_and_nesting():
    text = 'a = 1\nb = 2.5\nc = true\nd = "x"\ne = [1, [2, "3"]]\n[t.u]\nv = { w = "z" }\n'
    assert _core.parse_toml(text) == tomllib.loads(text)


def test_dates_come_back_as_text():
    assert _core.parse_toml("when = 1979-05-27T07:32:00Z\n") == {"when": "1979-05-27T07:32:00Z"}


def test_syntax_error_names_the_line():
    with pytest.raises(ValueError, match="line 2"):
        _core.parse_toml("ok = 1\nbad = = 2\n")
