"""Hashing a real code base: vega-dag's core against b3sum and a Python loop.

Group `hash-process`: whole processes over the same file list, default
threads: `vega-dag hash` against `b3sum`. Group `hash-inprocess`: inside one
process, `_core.hash_files` against a pure-Python hashlib loop (and the
blake3 package's loop, for reference).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import blake3
import pytest

from vega_dag import _core

ROUNDS = 5


@pytest.fixture(scope="module")
def file_list(real_py_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    listing = tmp_path_factory.mktemp("hash") / "files.txt"
    listing.write_text("".join(f"{p}\n" for p in real_py_files))
    return listing


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


@pytest.mark.benchmark(group="hash-process")
def test_vega_dag_hash_process(benchmark, file_list: Path):
    benchmark.pedantic(
        run,
        args=(["vega-dag", "hash", "-q", "--from-file", str(file_list)],),
        rounds=ROUNDS,
        warmup_rounds=1,
    )


@pytest.mark.benchmark(group="hash-process")
def test_b3sum_process(benchmark, b3sum: str, real_py_files: list[Path]):
    cmd = [b3sum, *map(str, real_py_files)]
    benchmark.pedantic(run, args=(cmd,), rounds=ROUNDS, warmup_rounds=1)


def test_both_tools_agree(b3sum: str, real_py_files: list[Path]):
    files = real_py_files[:200]
    out = subprocess.run([b3sum, *map(str, files)], capture_output=True, text=True, check=True)
    theirs = ["blake3:" + line.split()[0] for line in out.stdout.splitlines()]
    assert _core.hash_files(files) == theirs


@pytest.mark.benchmark(group="hash-inprocess")
def test_core_hash_files(benchmark, real_py_files: list[Path]):
    paths = [str(p) for p in real_py_files]
    benchmark.pedantic(_core.hash_files, args=(paths,), rounds=ROUNDS, warmup_rounds=1)


def hashlib_loop(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(hashlib.blake2b(f.read()).hexdigest())
    return out


def blake3_loop(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(blake3.blake3(f.read()).hexdigest())
    return out


@pytest.mark.benchmark(group="hash-inprocess")
def test_python_hashlib_loop(benchmark, real_py_files: list[Path]):
    paths = [str(p) for p in real_py_files]
    benchmark.pedantic(hashlib_loop, args=(paths,), rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.benchmark(group="hash-inprocess")
def test_python_blake3_loop(benchmark, real_py_files: list[Path]):
    paths = [str(p) for p in real_py_files]
    benchmark.pedantic(blake3_loop, args=(paths,), rounds=ROUNDS, warmup_rounds=1)
