"""A NATS region's pointer from its KV watch: a newer watched value is used as it comes (no
read after it), an older one is ignored, a delete is read; and uvicorn's server woken once a
second still stops as soon as it is told."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

from vega_dag.regions.server import Region
from vega_dag.rollout.jetstream import pointer_record
from vega_dag.rollout.pointers import RegionPointer


@dataclass
class Entry:
    key: str
    value: bytes | None
    revision: int | None
    operation: str | None = None


class _KV:
    def __init__(self, values: dict[str, tuple[bytes, int]]) -> None:
        self.values = values
        self.reads: list[str] = []

    async def get(self, key: str) -> Entry:
        from nats.js.errors import KeyNotFoundError

        self.reads.append(key)
        if key not in self.values:
            raise KeyNotFoundError
        value, revision = self.values[key]
        return Entry(key, value, revision)


@dataclass
class _Buckets:
    pointers: _KV
    deployments: _KV


def _record(deployment: str) -> bytes:
    return pointer_record(RegionPointer("fra", deployment, 0, 0.0))


def _region(tmp_path: Path, pointers: _KV) -> tuple[Region, list]:
    region = Region("fra", tmp_path / "fleet", tmp_path / "store", None, "nats://127.0.0.1:1/t")
    deployments = {
        d: (f'{{"manifest": "blake3:{d}"}}'.encode(), 1) for d in ("dpl_a", "dpl_b", "dpl_c")
    }
    region._nats = _Buckets(pointers, _KV(deployments))
    switched: list = []

    async def switch(target) -> None:
        switched.append(target[:3])

    region.switch = switch  # type: ignore[method-assign]
    return region, switched


def test_a_watched_pointer_is_used_without_a_read_and_an_older_one_ignored(tmp_path) -> None:
    pointers = _KV({"fra": (_record("dpl_a"), 5)})
    region, switched = _region(tmp_path, pointers)

    async def run() -> None:
        await region._read_nats()  # the first read: no update yet
        assert pointers.reads == ["fra"]
        pointers.values["fra"] = (_record("dpl_b"), 9)  # a write, and its watched value
        await region._read_nats(Entry("fra", _record("dpl_b"), 9))
        await region._read_nats(Entry("fra", _record("dpl_c"), 7))  # delivered late: older
        await region._read_nats(Entry("iad", _record("dpl_c"), 12))  # not its key: a read
        await asyncio.sleep(0)

    asyncio.run(run())
    assert pointers.reads == ["fra", "fra"]
    assert switched == [("dpl_a", "blake3:dpl_a", 5), ("dpl_b", "blake3:dpl_b", 9)]
    assert region.target is not None and region.target[:3] == ("dpl_b", "blake3:dpl_b", 9)


def test_a_deleted_pointer_is_read(tmp_path) -> None:
    pointers = _KV({"fra": (_record("dpl_a"), 5)})
    region, switched = _region(tmp_path, pointers)

    async def run() -> None:
        await region._read_nats(Entry("fra", _record("dpl_a"), 5))
        del pointers.values["fra"]
        await region._read_nats(Entry("fra", None, 6, "DEL"))
        await asyncio.sleep(0)

    asyncio.run(run())
    assert pointers.reads == ["fra"]  # the delete only
    assert switched == [("dpl_a", "blake3:dpl_a", 5), (None, None, 0)]


def test_the_quiet_server_stops_when_told_and_keeps_its_date_header() -> None:
    import uvicorn

    from vega_dag.regions.serving import QuietServer

    async def app(scope, receive, send) -> None:  # never called
        raise AssertionError

    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    server = QuietServer(config)

    async def run() -> None:
        loop = asyncio.create_task(server.main_loop())
        await asyncio.sleep(0)
        assert not loop.done()
        assert any(name == b"date" for name, _ in server.server_state.default_headers)
        server.handle_exit(signal.SIGTERM, None)
        # (A hang guard, not a timing: the wake-up, not the tick, ends the loop.)
        await asyncio.wait_for(loop, 30)

    asyncio.run(run())
    assert server.should_exit
