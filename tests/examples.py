"""The example projects as checked in, whatever running them left beside the sources.

``make demo`` deploys examples/shop-api in place, so a checkout that ran it
holds the example's store (``.vega/``: objects, the fleet's pointers, its
dependency layers with their own ``.py`` files, logs) until someone deletes
it. Tests that read the example's sources look through this module, so they
mean the same thing before and after the demo.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop-api"

#: Directories a build, a deploy or a tool leaves inside a project; never sources.
#: ``.vega`` is the store's default name, the one the examples use.
LEFTOVERS = frozenset({".vega", "__pycache__", ".ruff_cache", ".pytest_cache"})


def source_files(root: Path, suffix: str = "") -> list[Path]:
    """Every file under ``root`` ending in ``suffix``, sorted, outside LEFTOVERS."""
    return sorted(
        p for p in root.rglob(f"*{suffix}")
        if p.is_file() and not LEFTOVERS & set(p.relative_to(root).parts)
    )  # fmt: skip
