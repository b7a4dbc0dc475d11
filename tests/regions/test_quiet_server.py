"""uvicorn's server woken once a second (its date header's tick) still stops as soon as it
is told.

(A NATS region used to switch on a watched pointer value without reading the key: reverted,
because the record it then read could be older than the watched pointer, right after a stream
leader's election; tests/multihost/test_faults.py caught it.)"""

from __future__ import annotations

import asyncio
import signal


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
