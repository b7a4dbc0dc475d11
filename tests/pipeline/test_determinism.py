"""The same sources give the same bytes, whatever the machine's state.

Two copies of a project are written in different orders into different
directories and built by separate ``vega-dag build --json`` processes with
different TZ, umask, PYTHONHASHSEED, locale and SOURCE_DATE_EPOCH; every
bundle and the manifest must be byte-identical.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples import REPO, SHOP, source_files
from vega_dag.graph.modules import route_pattern
from vega_dag.manifest import decode_manifest
from vega_dag.store.objects import ObjectStore

ENV_A = {
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
    "LC_ALL": "C.UTF-8",
    "LANG": "C.UTF-8",
}
ENV_B = {
    "TZ": "Asia/Kathmandu",
    "PYTHONHASHSEED": "4242",
    "LC_ALL": "tr_TR.UTF-8",
    "LANG": "tr_TR.UTF-8",
    "SOURCE_DATE_EPOCH": "1700000000",
}


def copy_tree(src: Path, dest: Path, order: str, *, without: tuple[str, ...] = ()) -> None:
    """Copy ``src`` to ``dest`` creating files in ``order`` (sorted/reversed/shuffled)."""
    files = [p for p in source_files(src) if p.relative_to(src).as_posix() not in without]
    if order == "reversed":
        files.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(files)
    for path in files:
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())


def cli_build(root: Path, env: dict[str, str], umask: int, *extra: str) -> dict:
    def preexec() -> None:
        os.umask(umask)

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vega_dag.cli import main; main()",
            "build",
            str(root),
            "--json",
            *extra,
        ],
        env={**os.environ, **env},
        preexec_fn=preexec,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def stored(root: Path, digest: str) -> bytes:
    return ObjectStore(root / ".vega").get(digest)


def assert_same_outputs(a: Path, ra: dict, b: Path, rb: dict) -> None:
    assert ra["manifest"] == rb["manifest"]
    assert stored(a, ra["manifest"]) == stored(b, rb["manifest"])
    assert ra["routes"] == rb["routes"]
    assert ra["layer"] == rb["layer"]
    for pattern, digest in ra["routes"].items():
        bundle_a, bundle_b = stored(a, digest), stored(b, rb["routes"][pattern])
        assert bundle_a == bundle_b, pattern
        # Neither build directory leaks into the bytes.
        for root in (a, b):
            assert str(root).encode() not in bundle_a, pattern


def drop_lock(root: Path) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert 'lock = "requirements.lock"\n' in text
    pyproject.write_text(text.replace('lock = "requirements.lock"\n', ""))


def test_shop_api_is_reproducible(tmp_path):
    a = tmp_path / "a" / "shop"
    b = tmp_path / "some much" / "longer-path" / "elsewhere"
    copy_tree(SHOP, a, "sorted", without=("requirements.lock",))
    copy_tree(SHOP, b, "reversed", without=("requirements.lock",))
    drop_lock(a)
    drop_lock(b)

    ra = cli_build(a, ENV_A, 0o022)
    rb = cli_build(b, ENV_B, 0o077)
    assert ra["modules_compiled"] == rb["modules_compiled"] == len(source_files(SHOP, ".py"))
    patterns = {
        route_pattern(p.relative_to(SHOP).as_posix(), "api")
        for p in source_files(SHOP / "api", ".py")
    }
    assert set(ra["routes"]) == patterns - {None}
    assert_same_outputs(a, ra, b, rb)

    manifest = decode_manifest(stored(a, ra["manifest"]))
    assert [r.pattern for r in manifest.routes] == sorted(ra["routes"])
    assert {r.pattern: r.bundle for r in manifest.routes} == ra["routes"]

    # A route's bundle runs from a plain temp file via zipimport.
    bundle = tmp_path / "version.zip"
    bundle.write_bytes(stored(b, rb["routes"]["/api/version"]))
    code = (
        "import sys, platform\n"
        f"sys.path.insert(0, {str(bundle)!r})\n"
        "import importlib\n"
        "mod = importlib.import_module('api.version')\n"
        "assert mod.__loader__.__class__.__name__ == 'zipimporter', mod.__loader__\n"
        "assert mod.__file__.startswith(sys.path[0]), mod.__file__\n"
        "out = mod.handler(None)\n"
        "assert out == f'shop-api 1.4.2 (python {platform.python_version()})\\n', out\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV_B},
    )
    assert proc.stdout == "ok\n", proc.stderr


@pytest.mark.slow
def test_generated_project_is_reproducible(tmp_path):
    sys.path.insert(0, str(REPO / "benches"))
    try:
        from generate_project import generate
    finally:
        sys.path.remove(str(REPO / "benches"))

    origin = generate(tmp_path / "origin", 217, seed=3)
    a = tmp_path / "a"
    b = tmp_path / "b" / "deeper"
    copy_tree(origin.root, a, "shuffled")
    copy_tree(origin.root, b, "reversed")

    # 217 modules: the default compiles in a process pool, -j 1 in-process.
    ra = cli_build(a, ENV_A, 0o022)
    rb = cli_build(b, ENV_B, 0o027, "-j", "1")
    assert ra["modules_compiled"] == rb["modules_compiled"] == 217
    assert len(ra["routes"]) == len(origin.routes)
    assert_same_outputs(a, ra, b, rb)

    # A route bundle of the generated project runs too.
    pattern = sorted(ra["routes"])[0]
    bundle = tmp_path / "route.zip"
    bundle.write_bytes(stored(a, ra["routes"][pattern]))
    manifest = decode_manifest(stored(a, ra["manifest"]))
    module = next(r.module for r in manifest.routes if r.pattern == pattern)
    code = (
        "import sys, importlib, types\n"
        f"sys.path.insert(0, {str(bundle)!r})\n"
        f"mod = importlib.import_module({module!r})\n"
        "req = types.SimpleNamespace(query={}, path_params={}, method='GET')\n"
        "out = mod.handler(req)\n"
        f"assert out['route'] == {pattern!r}, out\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.stdout == "ok\n", proc.stderr
