"""Start-up of short commands: whole `vega-dag` processes beside the interpreter's own.

Groups (see docs/performance.md):
- startup-version: `vega-dag --version` against `python3 -c pass` and
  `python3 -S -c pass` (the interpreter without its site hooks; this sandbox's
  site runs a .pth).
- startup-status: `vega-dag status` in a project with no regions (one with no
  configuration, one with examples/shop-api's `[tool.vega]`), against the same.

Both groups also time `python3 -c "import re"`: the console script pip
writes for an entry point imports re before it calls vega-dag, which was the
floor of any `vega-dag` command started by name until the wheel shipped its
own launcher (launcher/scripts/vega-dag), which does not. With
VEGA_BENCH_REFERENCE=DIR (another checkout's
``python/`` with its built extension), `--version` also runs with that tree
(``[reference]``), in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benches.conftest import SMOKE

BIN = Path(sys.executable).parent
#: VEGA_BENCH_VEGA: another `vega-dag` to time (an older checkout's, for a before/after).
VEGA = os.environ.get("VEGA_BENCH_VEGA") or str(BIN / "vega-dag")
ROUNDS = 3 if SMOKE else 40


def run(*cmd: str, cwd: Path | None = None) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=cwd)


@pytest.fixture(scope="module")
def bare_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup")
    (root / "api").mkdir()
    (root / "api" / "index.py").write_text("def handler(request):\n    return {}\n")
    return root


@pytest.fixture(scope="module")
def configured_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup-configured")
    (root / "api").mkdir()
    (root / "api" / "index.py").write_text("def handler(request):\n    return {}\n")
    example = Path(__file__).resolve().parent.parent / "examples" / "shop-api" / "pyproject.toml"
    (root / "pyproject.toml").write_text(example.read_text())
    return root


PEERS = {
    "python3 -c pass": (sys.executable, "-c", "pass"),
    "python3 -S -c pass": (sys.executable, "-S", "-c", "pass"),
    "python3 -c import re": (sys.executable, "-c", "import re"),
}
#: tree → its `vega-dag` (see benches.test_bench_build.reference_command)
TREES = {"this": VEGA}
if os.environ.get("VEGA_BENCH_REFERENCE"):
    from benches.test_bench_build import reference_command

    TREES["reference"] = reference_command(Path(os.environ["VEGA_BENCH_REFERENCE"]))


@pytest.mark.benchmark(group="startup-version")
@pytest.mark.parametrize("peer", PEERS)
def test_python_startup_beside_version(benchmark, peer: str):
    benchmark.pedantic(run, args=PEERS[peer], rounds=ROUNDS, warmup_rounds=2)


@pytest.mark.benchmark(group="startup-version")
@pytest.mark.parametrize("tree", TREES)
def test_vega_version(benchmark, tree: str):
    benchmark.pedantic(run, args=(TREES[tree], "--version"), rounds=ROUNDS, warmup_rounds=2)


@pytest.mark.benchmark(group="startup-status")
@pytest.mark.parametrize("peer", PEERS)
def test_python_startup_beside_status(benchmark, peer: str):
    benchmark.pedantic(run, args=PEERS[peer], rounds=ROUNDS, warmup_rounds=2)


@pytest.mark.benchmark(group="startup-status")
def test_vega_status_no_regions(benchmark, bare_project: Path):
    benchmark.pedantic(
        run, args=(VEGA, "status"), kwargs={"cwd": bare_project}, rounds=ROUNDS, warmup_rounds=2
    )


@pytest.mark.benchmark(group="startup-status")
def test_vega_status_no_regions_configured(benchmark, configured_project: Path):
    benchmark.pedantic(
        run,
        args=(VEGA, "status"),
        kwargs={"cwd": configured_project},
        rounds=ROUNDS,
        warmup_rounds=2,
    )
