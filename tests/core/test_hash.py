"""BLAKE3 hashing in the core, checked against an independent implementation."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from vega_dag import _core
from vega_dag.errors import DigestFormatError, DigestMismatchError


def reference(path: Path) -> str:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    return "blake3:" + hasher.hexdigest()


@pytest.mark.parametrize("size", [0, 1, (1 << 20) + 1, (16 << 20) + 7])
def test_digests_match_reference(tmp_path: Path, size: int):
    path = tmp_path / f"f{size}"
    path.write_bytes(os.urandom(size))
    assert _core.hash_file(path) == reference(path)
    assert _core.hash_files([path]) == [reference(path)]
    assert _core.hash_bytes(path.read_bytes()) == reference(path)


def test_known_vector_empty():
    # The BLAKE3 digest of the empty input, from the official test vectors.
    assert _core.hash_bytes(b"") == (
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


@pytest.mark.slow
def test_sparse_file_larger_than_4_gib(tmp_path: Path):
    path = tmp_path / "sparse"
    with path.open("wb") as f:
        f.seek((4 << 30) + 12345)
        f.write(b"tail")
    assert path.stat().st_size > 4 << 30
    assert _core.hash_file(path) == reference(path)


def test_many_files_keep_order(tmp_path: Path):
    paths = []
    for i in range(300):
        p = tmp_path / f"{i:03}.py"
        p.write_text(f"x = {i}\n" * (i % 7))
        paths.append(p)
    assert _core.hash_files(paths) == [reference(p) for p in paths]


def test_missing_file_names_it(tmp_path: Path):
    missing = tmp_path / "missing.py"
    with pytest.raises(FileNotFoundError) as info:
        _core.hash_files([missing])
    assert info.value.filename == str(missing)


def test_directory_is_refused(tmp_path: Path):
    with pytest.raises(IsADirectoryError):
        _core.hash_file(tmp_path)


def test_verify_file(tmp_path: Path):
    path = tmp_path / "a"
    path.write_bytes(b"abc")
    _core.verify_file(path, _core.hash_bytes(b"abc"))
    with pytest.raises(DigestMismatchError) as info:
        _core.verify_file(path, _core.hash_bytes(b"abd"))
    assert info.value.path == str(path)
    assert info.value.actual == _core.hash_bytes(b"abc")
    with pytest.raises(DigestFormatError):
        _core.verify_file(path, "sha256:" + "0" * 64)
