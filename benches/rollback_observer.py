"""When every region answers with the previous deployment, as the rollback benches see it.

A rollback is timed from its command's start until every region answers a
route with the previous deployment's header (and the command has exited).
The observer used to sweep all 24 regions every 2 ms while the command ran:
on 2 cores that is 24 connections handed to workers every few milliseconds,
CPU taken from the very fronts and command being timed. The command itself
confirms every region before it exits with success, so the observer now
waits for the exit and then sweeps (every pending region at once), again until
each has answered with the previous deployment: it proves the same thing (a
region still on the rolled-back deployment keeps the clock running), at the
cost of one sweep after the exit instead of a machine kept busy throughout.
``poll=True`` is the old observer, kept to compare the two.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from vega_dag.regions.fleet import request_many


def sweep_until(regions: list[Any], path: str, previous: str, timeout: float = 60.0) -> None:
    """Return once every region answers ``path`` with ``previous``'s deployment header."""
    pending = {r.name: r for r in regions}
    deadline = time.monotonic() + timeout
    while pending:
        asked = list(pending.values())
        answers = request_many([(r.url + path, "GET", None) for r in asked], timeout=5.0)
        for r, answer in zip(asked, answers, strict=True):
            if isinstance(answer, OSError):
                raise answer
            if answer[1].get("x-vega-deployment") == previous:
                del pending[r.name]
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still not on {previous}: {', '.join(pending)}")
            time.sleep(0.002)


def timed(
    command: list[str], env: dict, regions: list[Any], path: str, previous: str, poll: bool = False
) -> tuple[float, int]:
    """(seconds from ``command``'s start until every region serves ``previous``, its exit
    status)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env)
    if poll:
        sweep_until(regions, path, previous)
        code = proc.wait()
    else:
        code = proc.wait()
        if code == 0:
            sweep_until(regions, path, previous)
    return time.perf_counter() - started, code
