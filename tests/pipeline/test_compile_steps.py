"""Compile steps from plugins: run before compile, named in the toolchain and every key."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

from vega_dag.config import ConfigError
from vega_dag.manifest import decode_manifest
from vega_dag.pipeline import build
from vega_dag.plugins import hookimpl
from vega_dag.plugins.manager import get_plugin_manager
from vega_dag.store.objects import ObjectStore


class DropMarked:
    name = "drop-marked"

    def __init__(self, version: str) -> None:
        self.version = version
        self.calls: list[str] = []

    def transform(self, path: str, source: bytes) -> bytes:
        self.calls.append(path)
        return b"\n".join(
            line for line in source.split(b"\n") if not line.rstrip().endswith(b"# drop")
        )


class StepPlugin:
    def __init__(self, step: DropMarked) -> None:
        self.step = step

    @hookimpl
    def vega_dag_compile_steps(self, config: object) -> list:
        return [self.step]


@pytest.fixture
def step():
    s = DropMarked("1")
    plugin = StepPlugin(s)
    pm = get_plugin_manager()
    pm.register(plugin, name="test-compile-step")
    yield s
    pm.unregister(plugin)


PYPROJECT = '[project]\nname = "x"\n[tool.vega]\ncompile_steps = ["drop-marked"]\n'


def project(tree) -> Path:
    return tree(
        {
            "pyproject.toml": PYPROJECT,
            "lib/__init__.py": "",
            "lib/flags.py": "DEBUG = True  # drop\nNAME = 'flags'\n",
            "api/index.py": "from lib import flags\n\n\ndef handler(request):\n"
            "    return {'debug': hasattr(flags, 'DEBUG'), 'name': flags.NAME}\n",
        }
    )


def run_route(root: Path, result) -> dict:
    data = ObjectStore(root / ".vega").get(result.routes["/api"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    assert "lib/flags.pyc" in names
    tmp = root.parent / "bundle.zip"
    tmp.write_bytes(data)
    sys.path.insert(0, str(tmp))
    try:
        import api.index  # type: ignore[import-not-found]

        return api.index.handler(None)
    finally:
        sys.path.remove(str(tmp))
        for mod in [m for m in sys.modules if m.split(".")[0] in ("api", "lib")]:
            del sys.modules[mod]


def test_step_transforms_source_and_enters_the_toolchain(tree, step):
    root = project(tree)
    result = build(root)
    assert sorted(step.calls) == ["api/index.py", "lib/__init__.py", "lib/flags.py"]
    assert run_route(root, result) == {"debug": False, "name": "flags"}
    manifest = decode_manifest(ObjectStore(root / ".vega").get(result.manifest))
    assert manifest.toolchain.steps == [("drop-marked", "1")]


def test_new_step_version_misses_every_cache(tree, step):
    root = project(tree)
    first = build(root)
    step.version = "2"
    again = build(root, explain=True)
    assert again.modules_compiled == 3
    assert again.manifest != first.manifest
    assert any("toolchain changed" in line and "steps" in line for line in again.explain)


def test_unknown_step_is_a_clear_error(tree):
    root = project(tree)
    with pytest.raises(ConfigError, match="'drop-marked' not provided by any installed plugin"):
        build(root)


def test_failing_step_names_the_file(tree, step):
    root = project(tree)

    def boom(path: str, source: bytes) -> bytes:
        raise RuntimeError("bad transform")

    step.transform = boom  # type: ignore[method-assign]
    from vega_dag.pipeline import BuildError

    with pytest.raises(BuildError) as info:
        build(root)
    assert any("lib/flags.py: compile step drop-marked 1 failed" in p for p in info.value.problems)
