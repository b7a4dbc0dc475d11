"""The ASGI lifespan of a deployment's applications, run by the worker that serves them.

A FastAPI ``lifespan=`` context manager, ``@app.on_event("startup")`` or
Starlette's ``on_startup`` sets up what the routes use (``app.state.db``, a
client pool): under ``uvicorn app:app`` it runs before the first request and
its shutdown after the last. A region's worker does the same, on the event
loop that serves (after any fork: a template's clones each run their own),
for every ASGI application a route serves (each object once, however many
routes serve it): the startup before the worker tells its front it is ready,
the shutdown when the worker is retired or stopped, bounded by
``SHUTDOWN_TIMEOUT``.

A startup that sends ``lifespan.startup.failed`` or raises fails the load,
naming the route, its file, the application and the error, as a route that
raises at import does: the deploy fails at its prefetch, before any pointer
moves. An application that does not speak lifespan (it raises, or returns,
before asking for its first message: Django's ASGI handler, a bare ASGI
callable) is served without one, as uvicorn's ``lifespan="auto"`` does.

The lifespan ``state`` extension is supported: what the startup puts in
``scope["state"]`` (Starlette's ``yield {"db": ...}``) is copied, shallowly,
into the scope of every request to that application.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vega_dag.regions.loading import frames_of
from vega_dag.regions.runtime import ASGIApp, RouteLoadError, Router

#: How long an application's shutdown may take before the worker goes without it.
SHUTDOWN_TIMEOUT = 5.0
#: After a ``lifespan.startup.failed``, how long to wait for the exception that
#: usually follows it (Starlette re-raises): it names the error better than
#: the message, which is a whole traceback.
_RAISE_GRACE = 1.0


@dataclass
class AppLifespan:
    """One application's lifespan: started once, shut down once."""

    app: ASGIApp
    #: the first route serving it: (pattern, module, file, entry)
    pattern: str
    module: str
    file: str
    entry: str
    state: dict[str, Any] = field(default_factory=dict)
    #: it answered the startup (False: it does not speak lifespan)
    running: bool = False
    _inbox: asyncio.Queue | None = None
    _events: asyncio.Queue | None = None
    _task: asyncio.Task | None = None
    _asked: bool = False

    def _fail(self, reason: str, err: BaseException | None = None) -> RouteLoadError:
        return RouteLoadError(
            self.pattern,
            self.module,
            f"the lifespan startup of {self.module}:{self.entry} failed: {reason}",
            file=self.file,
            frames=frames_of(err.__traceback__) if err is not None else None,
        )

    async def _receive(self) -> dict:
        self._asked = True
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: dict) -> None:
        assert self._events is not None
        self._events.put_nowait(("sent", message))

    async def _main(self) -> None:
        assert self._events is not None
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as err:
            self._events.put_nowait(("raised", err))
            if not isinstance(err, Exception):
                raise
        else:
            self._events.put_nowait(("returned", None))

    async def startup(self) -> None:
        """Run the startup; RouteLoadError (naming the route and app) if it fails."""
        self._inbox, self._events = asyncio.Queue(), asyncio.Queue()
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = asyncio.get_running_loop().create_task(self._main())
        while True:
            what, value = await self._events.get()
            if what == "sent":
                kind = value.get("type")
                if kind == "lifespan.startup.complete":
                    self.running = True
                    return
                if kind == "lifespan.startup.failed":
                    raise await self._failed(str(value.get("message", "")))
                continue  # nothing else is an answer to the startup
            if what == "raised" and self._asked:
                raise self._fail(f"{type(value).__name__}: {value}", value)
            # It raised or returned before asking for the startup: no lifespan.
            return

    async def _failed(self, message: str) -> RouteLoadError:
        assert self._events is not None and self._task is not None
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(_RAISE_GRACE):
                while True:
                    what, value = await self._events.get()
                    if what == "raised":
                        return self._fail(f"{type(value).__name__}: {value}", value)
                    if what == "returned":
                        break
        lines = [line for line in message.strip().splitlines() if line.strip()]
        # Starlette's message is the formatted traceback: its last line is the error.
        return self._fail(lines[-1].strip() if lines else "lifespan.startup.failed")

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Run the shutdown, for at most ``timeout`` s; what goes wrong goes to the log."""
        if not self.running or self._inbox is None or self._events is None:
            return
        self.running = False
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            async with asyncio.timeout(timeout):
                while True:
                    what, value = await self._events.get()
                    if what == "sent" and value.get("type") == "lifespan.shutdown.failed":
                        print(
                            f"route {self.pattern}: the lifespan shutdown of "
                            f"{self.module}:{self.entry} failed: {value.get('message', '')}",
                            file=sys.stderr,
                        )
                        return
                    if what == "sent" and value.get("type") == "lifespan.shutdown.complete":
                        return
                    if what == "raised":
                        print(
                            f"route {self.pattern}: the lifespan shutdown of "
                            f"{self.module}:{self.entry} raised:",
                            file=sys.stderr,
                        )
                        traceback.print_exception(value, file=sys.stderr)
                        return
                    if what == "returned":
                        return
        except TimeoutError:
            print(
                f"route {self.pattern}: the lifespan shutdown of {self.module}:{self.entry} "
                f"did not finish within {timeout:g} s",
                file=sys.stderr,
            )
            if self._task is not None:
                self._task.cancel()


class Lifespans:
    """The lifespans of every ASGI application a deployment's routes serve."""

    def __init__(self, apps: list[AppLifespan]) -> None:
        self.apps = apps

    async def startup(self, step: Callable[[str], None] | None = None) -> None:
        """Start each application in route order; the first failure stops the load.

        ``step`` is told the pattern of each application's route before it
        starts (the load's trail). Those started before a failure are shut
        down again: the worker goes away.
        """
        started: list[AppLifespan] = []
        for app in self.apps:
            if step is not None:
                step(app.pattern)
            try:
                await app.startup()
            except BaseException:
                for done in reversed(started):
                    await done.shutdown()
                raise
            started.append(app)

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Shut them down in reverse order, all within ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for app in reversed(self.apps):
            await app.shutdown(max(0.0, deadline - loop.time()))


def lifespans_of(router: Router) -> Lifespans:
    """The lifespans of ``router``'s ASGI applications, each application once.

    A ``handler(request)`` route has none, and WSGI has no lifespan.
    """
    seen: dict[int, AppLifespan] = {}
    for route in router.routes:
        if route.kind != "asgi" or id(route.app) in seen:
            continue
        module, file, entry = route.origin or ("", "", "app")
        seen[id(route.app)] = AppLifespan(route.app, route.pattern, module, file, entry)
    return Lifespans(list(seen.values()))


def share_state(router: Router, lifespans: Lifespans) -> None:
    """Give each route the state its application's startup left (requests get a copy)."""
    by_app = {id(life.app): life for life in lifespans.apps if life.running and life.state}
    for route in router.routes:
        life = by_app.get(id(route.app))
        if life is not None:
            route.state = life.state
