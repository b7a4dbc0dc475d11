"""The fleet's supervisor: it owns the region fronts and restarts the ones that die.

    python -m vega_dag.regions.supervisor --fleet DIR --store DIR [--observe JSON] [--pointers URL]

Started by ``regions up`` (and a deploy's ``up``) in its own session, so it
outlives the command that started it. One per fleet: it holds an exclusive
``flock`` on ``supervisor.lock`` for its life, so a second one exits at once.

Why a process of our own rather than systemd or supervisord: the fleet is a
project's local processes, started by whoever runs ``vega-dag`` (no unit
files, no root, no daemon to install), and what a restart must do is ours:
bring the region back on its old port, on the deployment its pointer names,
and say when it serves it. The shape is supervisord's, though: the fronts are
this process's children, so each death comes with its exit status or signal
(``waitpid``); a front that dies again within ``STABLE_SECONDS`` of its
start waits an exponentially growing time (``BACKOFF_FIRST`` doubling up to
``BACKOFF_MAX``) before the next start, a stable one is restarted at once.

What it watches is ``wanted.json`` (the region names ``up`` asked for). It
never fights a deliberate ``regions down``: ``down`` removes ``wanted.json``
and stops this process before it stops a region, and this process exits
without starting anything once ``wanted.json`` is gone. ``SIGHUP`` (sent by
``up``) re-reads it and starts every wanted region that is missing now,
whatever its backoff.

What it did is in ``supervisor.json`` (written only here, read by ``status``):
per region its state (``running``, ``restarting`` until it serves its
pointer's deployment, ``backoff``, ``failed``), its restart count and the
last few deaths (when, how it ended, how long it had run, when it served
again). Fronts it did not start (a fleet from before, or from a supervisor
that died) are adopted: watched by pid, their exit status unknown.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vega_dag.processes import pid_alive, spawn_detached

#: How often deaths are looked for (a killed region is restarted within this).
TICK_SECONDS = 0.1
#: A front that dies within this many seconds of its start is crash-looping: back off.
STABLE_SECONDS = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
#: How often a starting front is asked whether it serves its pointer's deployment yet.
READY_POLL_SECONDS = 0.25
#: Deaths kept per region in supervisor.json.
HISTORY = 10


def wanted_path(fleet: Path) -> Path:
    return fleet / "wanted.json"


def state_path(fleet: Path) -> Path:
    return fleet / "supervisor.json"


def lock_path(fleet: Path) -> Path:
    return fleet / "supervisor.lock"


def read_wanted(fleet: Path) -> list[str] | None:
    """The wanted region names, or None after a ``regions down`` (or before any ``up``)."""
    try:
        return list(json.loads(wanted_path(fleet).read_text())["regions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_wanted(fleet: Path, names: list[str]) -> None:
    from vega_dag.store.objects import write_durably

    write_durably(wanted_path(fleet), json.dumps({"regions": names}).encode(), sync=False)


def converge_path(fleet: Path) -> Path:
    return fleet / "converge.json"


def read_converge(fleet: Path) -> dict[str, str]:
    """Region → the deployment a deploy skipped it for (it was down), to converge to."""
    try:
        data = json.loads(converge_path(fleet).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_converge(fleet: Path, pending: dict[str, str]) -> None:
    """Written only while holding the deploy lock (by a deploy, or by a convergence)."""
    from vega_dag.store.objects import write_durably

    if not pending:
        converge_path(fleet).unlink(missing_ok=True)
        return
    write_durably(converge_path(fleet), json.dumps(pending, sort_keys=True).encode(), sync=False)


def read_state(fleet: Path) -> dict[str, Any] | None:
    """What the supervisor last wrote, if it runs (None when none does)."""
    try:
        state = json.loads(state_path(fleet).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not pid_alive(int(state.get("pid", 0))):
        return None
    if not _lock_held(fleet):
        return None  # the pid is another process's now: the supervisor is gone
    return state


def _lock_held(fleet: Path) -> bool:
    """Whether a supervisor holds this fleet's lock (as it does for its whole life)."""
    try:
        with open(lock_path(fleet), "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


def describe_exit(code: int) -> str:
    """How a child ended (its ``Popen.returncode``), as a person would say it."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with status {code}"


@dataclass
class Front:
    """One wanted region, as the supervisor sees it."""

    name: str
    pid: int = 0
    port: int = 0
    #: the front, when this supervisor started it (None: adopted, or not running)
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    state: str = "starting"
    restarts: int = 0
    #: consecutive deaths within STABLE_SECONDS of their start
    quick_deaths: int = 0
    next_start: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    #: the last convergence to a deployment a deploy skipped it for
    converged: dict[str, Any] | None = None
    #: no convergence is tried again before this (monotonic), after one failed
    converge_after: float = 0.0
    #: when its readiness was last asked (monotonic): a front that cannot load is asked less
    checked_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "port": self.port,
            "state": self.state,
            "restarts": self.restarts,
            "started_at": self.started_at,
            # Wall-clock time, for other processes.
            "next_start": (
                time.time() + max(0.0, self.next_start - time.monotonic())
                if self.state == "backoff"
                else None
            ),
            "error": self.error,
            "history": self.history,
            "converged": self.converged,
        }


class Supervisor:
    def __init__(
        self, fleet: Path, store: Path, observe: str | None = None, pointers: str | None = None
    ) -> None:
        self.fleet = fleet
        self.store = store
        #: the pointer store's URL (NATS), or None: the fleet's SQLite file
        self.pointers = pointers
        self._shared: Any = None
        #: [tool.vega.observe] as JSON, passed on to every front it starts (regions.observe).
        self.observe = observe
        self.fronts: dict[str, Front] = {}
        self.hup = False
        self.stopping = False
        self.started_at = time.time()
        self._written = ""
        self.db: sqlite3.Connection | None = None
        self.converging: threading.Thread | None = None

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hup)
        self._adopt()
        self.hup = True  # the first pass starts whatever is missing
        while not self.stopping:
            wanted = read_wanted(self.fleet)
            if wanted is None:
                break  # `regions down`: start nothing, let it stop the regions
            self._reap()
            now = time.monotonic()
            forced, self.hup = self.hup, False
            for name in wanted:
                front = self.fronts.setdefault(name, Front(name))
                if front.pid and self._alive(front):
                    if front.state in ("starting", "restarting"):
                        self._check_ready(front)
                    continue
                if front.state == "backoff" and not forced and now < front.next_start:
                    continue
                if self.stopping or read_wanted(self.fleet) is None:
                    break
                try:
                    self._start(front)
                except OSError as err:  # e.g. a full disk: try again after a while
                    front.started_at = time.time()
                    self._died(front, f"could not be started: {err}")
            self._converge_next(now)
            self._write()
            time.sleep(TICK_SECONDS)
        if read_wanted(self.fleet) is None:
            self._stop_unrecorded()
        self._write(final=True)

    def _stop_unrecorded(self) -> None:
        """Kill the fronts started so lately they have no record yet.

        ``regions down`` stops the regions it finds records of, once this
        process is gone; one started a moment before would outlive it.
        """
        for front in self.fronts.values():
            if front.proc is None or front.proc.poll() is not None:
                continue
            try:
                rec = json.loads((self.fleet / "regions" / f"{front.name}.json").read_text())
            except (OSError, ValueError):
                rec = {}
            if rec.get("pid") != front.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(front.pid, signal.SIGKILL)

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def _hup(self, *_: Any) -> None:
        self.hup = True

    # -- processes ------------------------------------------------------------
    def _adopt(self) -> None:
        """Fronts already running (not our children): watched by pid."""
        for path in sorted((self.fleet / "regions").glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if pid_alive(int(rec.get("pid", 0))):
                self.fronts[rec["name"]] = Front(
                    rec["name"], rec["pid"], rec["port"], None, rec["started_at"], "running"
                )

    def _alive(self, front: Front) -> bool:
        if front.proc is not None:
            return True  # _reap clears it when the child ends
        if pid_alive(front.pid):
            return True
        self._died(front, "ended (adopted from an earlier supervisor: exit status unknown)")
        return False

    def _reap(self) -> None:
        for front in self.fronts.values():
            if front.proc is not None and (code := front.proc.poll()) is not None:
                self._died(front, describe_exit(code))

    def _died(self, front: Front, how: str) -> None:
        ran = time.time() - front.started_at if front.started_at else 0.0
        # Its zygote and workers are in its session: a worker outlives a
        # killed front only until it notices, and none may serve after it.
        if front.pid > 0:  # (never 0: that is this process's own group)
            # Each front leads its own session (start_new_session): its group id is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(front.pid, signal.SIGKILL)
        (self.fleet / "regions" / f"{front.name}.json").unlink(missing_ok=True)
        front.history = [
            *front.history,
            {"at": time.time(), "how": how, "ran_seconds": round(ran, 1), "pid": front.pid},
        ][-HISTORY:]
        front.pid = 0
        front.proc = None
        front.error = None
        front.quick_deaths = front.quick_deaths + 1 if ran < STABLE_SECONDS else 0
        delay = 0.0
        if front.quick_deaths:
            delay = min(BACKOFF_FIRST * 2 ** (front.quick_deaths - 1), BACKOFF_MAX)
        front.next_start = time.monotonic() + delay
        front.state = "backoff"

    def _start(self, front: Front) -> None:
        restart = bool(front.history)
        if restart:
            front.restarts += 1
        port = front.port if front.port and _port_free(front.port) else 0
        env = dict(os.environ)
        env.pop("VEGA_DAG_TEST_KILL_AT", None)
        args = [
            sys.executable, "-m", "vega_dag.regions.server", "--name", front.name,
            "--fleet", str(self.fleet), "--store", str(self.store), "--port", str(port),
        ]  # fmt: skip
        if self.observe is not None:
            args += ["--observe", self.observe]
        if self.pointers is not None:
            args += ["--pointers", self.pointers]
        (self.fleet / "logs").mkdir(parents=True, exist_ok=True)
        log = self.fleet / "logs" / f"{front.name}.log"
        if restart:
            why = front.history[-1]["how"]
            with open(log, "ab") as out:
                out.write(f"[supervisor] restarting {front.name} ({why})\n".encode())
        proc = spawn_detached(args, log, self.fleet, env)
        front.pid = proc.pid
        front.proc = proc
        front.port = port
        front.started_at = time.time()
        front.state = "restarting" if restart else "starting"

    # -- readiness ------------------------------------------------------------
    def _check_ready(self, front: Front) -> None:
        """``running`` once the front serves the deployment its pointer names."""
        now = time.monotonic()
        if now - front.checked_at < READY_POLL_SECONDS:
            return
        front.checked_at = now
        try:
            rec = json.loads((self.fleet / "regions" / f"{front.name}.json").read_text())
        except (OSError, ValueError):
            return
        if rec.get("pid") != front.pid:
            return
        front.port = int(rec["port"])
        from vega_dag.regions.fleet import request

        try:
            code, _, data, _ = request(rec["url"] + "/__vega/status", timeout=0.5)
            status = json.loads(data) if code == 200 else None
        except (OSError, ValueError):
            status = None
        if status is None:
            return
        pointer = self._pointer(front.name)
        if status.get("deployment") == pointer:
            front.state = "running"
            front.error = None
            if front.history and "serving_at" not in front.history[-1]:
                front.history[-1]["serving_at"] = time.time()
                front.history[-1]["deployment"] = pointer
        elif status.get("error"):
            front.error = status["error"]

    def _pointer(self, name: str) -> str | None:
        if self.pointers is not None:
            from vega_dag.errors import VegaError
            from vega_dag.rollout.pointers import open_pointers

            try:
                if self._shared is None:
                    self._shared = open_pointers(self.fleet / "pointers.sqlite", self.pointers)
                return self._shared.pointer(name).deployment
            except VegaError:
                return None
        path = self.fleet / "pointers.sqlite"
        try:
            if self.db is None:
                if not path.exists():
                    return None
                self.db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
            row = self.db.execute(
                "SELECT deployment FROM pointers WHERE region=?", (name,)
            ).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    # -- convergence ----------------------------------------------------------
    def _converge_next(self, now: float) -> None:
        """Start converging one region a deploy skipped, once it serves again."""
        if self.converging is not None and self.converging.is_alive():
            return
        for name, deployment in sorted(read_converge(self.fleet).items()):
            front = self.fronts.get(name)
            if front is None or front.state != "running" or now < front.converge_after:
                continue
            self.converging = threading.Thread(
                target=self._converge, args=(front, deployment), daemon=True
            )
            self.converging.start()
            return

    def _converge(self, front: Front, deployment: str) -> None:
        try:
            front.converged = self._converge_one(front, deployment)
            front.error = None
        except Exception as err:  # a convergence that failed is tried again later
            front.error = f"converge to {deployment}: {err}"
            front.converge_after = time.monotonic() + BACKOFF_MAX

    def _converge_one(self, front: Front, deployment: str) -> dict[str, Any] | None:
        """Verify and load ``deployment`` in the region, then move its pointer there.

        As a deploy's promote, without its gate: the deployment passed its
        gates in the regions it was deployed to; what this region must show
        is that it holds every blob and its worker loaded, before its pointer
        moves (and the region switches only to a loaded worker anyway).
        """
        from vega_dag.regions.fleet import request
        from vega_dag.rollout.pointers import Move, open_pointers

        started = time.time()
        store = open_pointers(self.fleet / "pointers.sqlite", self.pointers)
        try:
            record = store.deployment(deployment)
            if record is None or record.status not in ("live", "unchanged"):
                with store.deploy_lock(f"converge {front.name} by the supervisor", 60.0):
                    self._forget(front.name, deployment)
                return None  # rolled back (or gone) since: nothing to converge to
            if store.pointer(front.name).deployment == deployment:
                with store.deploy_lock(f"converge {front.name} by the supervisor", 60.0):
                    self._forget(front.name, deployment)
                return None
            rec = json.loads((self.fleet / "regions" / f"{front.name}.json").read_text())
            load_timeout = float(record.config.get("health", {}).get("load_timeout_s", 10.0))
            body = {"manifest": record.manifest, "wait": True, "load_timeout": load_timeout}
            code, _, data, _ = request(
                rec["url"] + "/__vega/prefetch",
                "POST",
                json.dumps(body).encode(),
                timeout=60.0 + 2 * load_timeout + 5.0,
            )
            answer = json.loads(data) if data else {}
            if code != 200 or not answer.get("ok"):
                raise RuntimeError(f"prefetch failed: {answer.get('error') or code}")
            with store.deploy_lock(f"converge {front.name} by the supervisor", 60.0):
                if read_converge(self.fleet).get(front.name) != deployment:
                    return None  # a deploy since has decided for this region
                now = store.deployment(deployment)
                if now is None or now.status not in ("live", "unchanged"):
                    self._forget(front.name, deployment)  # rolled back while it loaded
                    return None
                p = store.pointer(front.name)
                move = Move(front.name, p.generation, p.deployment, deployment)
                store.swap([move], deployment, "converge", "supervisor")
                self._forget(front.name, deployment)
            code, _, data, _ = request(
                f"{rec['url']}/__vega/wait?deployment={deployment}&timeout=30", timeout=35.0
            )
            if code != 200:
                raise RuntimeError(
                    f"not serving {deployment} after its pointer moved: {data[:200]!r}"
                )
            return {
                "at": time.time(),
                "deployment": deployment,
                "from": p.deployment,
                "seconds": round(time.time() - started, 3),
            }
        finally:
            store.close()

    def _forget(self, name: str, deployment: str) -> None:
        """Drop ``name``'s pending convergence (the caller holds the deploy lock)."""
        pending = read_converge(self.fleet)
        if pending.get(name) == deployment:
            del pending[name]
            write_converge(self.fleet, pending)

    # -- the record -----------------------------------------------------------
    def _write(self, final: bool = False) -> None:
        state = {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "stopped": final,
            "regions": {n: f.to_json() for n, f in sorted(self.fronts.items())},
        }
        text = json.dumps(state, sort_keys=True)
        if text == self._written:
            return
        from vega_dag.store.objects import write_durably

        with contextlib.suppress(OSError):
            write_durably(state_path(self.fleet), text.encode(), sync=False)
            self._written = text


def _port_free(port: int) -> bool:
    """Whether the region's old port can be bound again (its URL then stays the same)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vega_dag.regions.supervisor")
    parser.add_argument("--fleet", required=True, type=Path)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--observe", default=None, help="[tool.vega.observe] as JSON")
    parser.add_argument("--pointers", default=None, help="the pointer store's URL (NATS)")
    args = parser.parse_args(argv)
    lock = open(lock_path(args.fleet), "a+")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another supervisor has this fleet
    Supervisor(args.fleet, args.store, args.observe, args.pointers).run()


if __name__ == "__main__":
    main()
