"""The bisection's search and version ranges, exhaustively on small inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vega_dag.toolchain.bisect import search
from vega_dag.toolchain.versions import VersionsError, versions_between


@pytest.mark.parametrize("n", range(1, 40))
def test_finds_every_first_drifting_position_within_the_bound(n: int) -> None:
    candidates = [f"v{i}" for i in range(n)]
    for first in range(n + 1):  # n: no candidate drifts
        calls: list[str] = []

        def differs(v: str, first: int = first, calls: list[str] = calls) -> bool:
            calls.append(v)
            return candidates.index(v) >= first

        assert search(candidates, differs) == first
        # N = n + 1 versions with the known-good one: ⌈log2 N⌉ builds beside it.
        assert len(calls) <= math.ceil(math.log2(n + 1))
        assert len(set(calls)) == len(calls)  # no version built twice


@given(st.lists(st.booleans(), max_size=64))
def test_a_monotone_answer_is_exact(flags: list[bool]) -> None:
    flags = sorted(flags)  # drifted once, drifted for good
    candidates = list(range(len(flags)))
    expected = flags.index(True) if True in flags else len(flags)
    assert search(candidates, lambda i: flags[i]) == expected


def test_versions_between() -> None:
    vs = ["1.0", "1.1", "1.2", "2.0", "2.1"]
    assert versions_between(vs, "1.1") == ["1.1", "1.2", "2.0", "2.1"]
    assert versions_between(vs, "1.0", "1.2") == ["1.0", "1.1", "1.2"]
    with pytest.raises(VersionsError, match=r"known-good version 0\.9 is not among"):
        versions_between(vs, "0.9")
    with pytest.raises(VersionsError, match=r"does not come after the known-good 2\.0"):
        versions_between(vs, "2.0", "1.0")
    with pytest.raises(VersionsError, match=r"no version after the known-good 2\.1"):
        versions_between(vs, "2.1")
    with pytest.raises(VersionsError, match="listed more than once"):
        versions_between(["1.0", "1.0"], "1.0")
