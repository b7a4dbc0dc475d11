"""The local fleet: N region processes of one project on this machine.

State lives in ``<project>/.vega/fleet/``: ``pointers.sqlite`` (the pointer
store), ``regions/<name>.json`` (pid, process group, port, URL of each running
region), ``logs/<name>.log``, and the content-addressed ``bundles/`` and
``layers/`` the workers load. Each region is its own session (process group),
so stopping it stops its zygote and workers too.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import vega_dag
from vega_dag.config import ProjectConfig
from vega_dag.errors import VegaError
from vega_dag.regions import REGION_NAMES

#: How long ``up`` waits for every region to answer.
START_TIMEOUT = 60.0


class RegionError(VegaError):
    """A region is down, unreachable, or refused a request."""

    def __init__(self, region: str, reason: str) -> None:
        super().__init__(f"region {region}: {reason}")
        self.region = region
        self.reason = reason


@dataclass(frozen=True)
class RegionInfo:
    name: str
    url: str
    pid: int = 0
    pgid: int = 0
    started_at: float = 0.0


def fleet_dir(config: ProjectConfig) -> Path:
    return config.store_dir / "fleet"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; its parent (this process, in tests) has not reaped it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def request(
    url: str, method: str = "GET", body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes, float]:
    """One HTTP request: (status, lower-case headers, body, seconds)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    started = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        seconds = time.perf_counter() - started
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, seconds
    finally:
        conn.close()


class LocalFleet:
    """Region processes on loopback ports; the first RegionTarget implementation."""

    name = "local"

    def __init__(self, config: ProjectConfig) -> None:
        self.config = config
        self.dir = fleet_dir(config)
        self.db_path = self.dir / "pointers.sqlite"

    # -- discovery ------------------------------------------------------------
    def regions(self) -> list[RegionInfo]:
        """The running regions, in fleet order (records of dead ones are removed)."""
        found = []
        for path in sorted((self.dir / "regions").glob("*.json")):
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not _alive(rec["pid"]):
                path.unlink(missing_ok=True)
                continue
            found.append(
                RegionInfo(rec["name"], rec["url"], rec["pid"], rec["pgid"], rec["started_at"])
            )
        order = {name: i for i, name in enumerate(REGION_NAMES)}
        return sorted(found, key=lambda r: (order.get(r.name, len(order)), r.name))

    # -- lifecycle ------------------------------------------------------------
    def up(self, count: int) -> tuple[list[RegionInfo], bool]:
        """Start ``count`` regions unless some run; (regions, whether they were started)."""
        running = self.regions()
        if running:
            return running, False
        if not 1 <= count <= len(REGION_NAMES):
            raise RegionError("fleet", f"a local fleet has 1 to {len(REGION_NAMES)} regions")
        from vega_dag.rollout.pointers import PointerStore

        PointerStore(self.db_path).close()  # the schema exists before any region polls it
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "regions").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # The regions run this very vega-dag, wherever it was imported from.
        here = str(Path(vega_dag.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
        env.pop("VEGA_DAG_TEST_KILL_AT", None)
        names = REGION_NAMES[:count]
        for name in names:
            log = open(self.dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
            with log:
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "vega_dag.regions.server",
                        "--name",
                        name,
                        "--fleet",
                        str(self.dir),
                        "--store",
                        str(self.config.store_dir),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                    cwd=str(self.dir),
                )
        self.wait_ready(names)
        return self.regions(), True

    def wait_ready(self, names: tuple[str, ...] | list[str]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pending = set(names)
        while pending:
            for info in self.regions():
                if info.name in pending:
                    with contextlib.suppress(OSError):
                        if request(info.url + "/__vega/status", timeout=1.0)[0] == 200:
                            pending.discard(info.name)
            if not pending:
                return
            if time.monotonic() > deadline:
                log = self.dir / "logs" / f"{sorted(pending)[0]}.log"
                raise RegionError(
                    ", ".join(sorted(pending)), f"did not start within {START_TIMEOUT:.0f}s ({log})"
                )
            time.sleep(0.05)

    def down(self) -> list[str]:
        """Stop every region (and its zygote and workers); the names stopped."""
        regions = self.regions()
        for info in regions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(_alive(r.pid) for r in regions):
            time.sleep(0.05)
        for info in regions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(info.pgid, signal.SIGKILL)
            (self.dir / "regions" / f"{info.name}.json").unlink(missing_ok=True)
        from vega_dag.regions.server import socket_dir

        shutil.rmtree(socket_dir(self.dir), ignore_errors=True)
        return [r.name for r in regions]

    # -- talking to regions ---------------------------------------------------
    def status(self, region: RegionInfo, timeout: float = 2.0) -> dict:
        try:
            code, _, data, _ = request(region.url + "/__vega/status", timeout=timeout)
        except OSError as err:
            raise RegionError(region.name, f"unreachable at {region.url}: {err}") from None
        if code != 200:
            raise RegionError(region.name, f"status answered {code}")
        return json.loads(data)

    def statuses(self, regions: list[RegionInfo]) -> dict[str, dict | RegionError]:
        def one(r: RegionInfo) -> dict | RegionError:
            try:
                return self.status(r)
            except RegionError as err:
                return err

        with ThreadPoolExecutor(max_workers=min(32, len(regions) or 1)) as pool:
            return dict(zip([r.name for r in regions], pool.map(one, regions), strict=True))

    def prefetch(self, region: RegionInfo, manifest: str, timeout: float = 180.0) -> dict:
        """Ask the region to load and verify every blob of ``manifest`` and warm its worker."""
        body = json.dumps({"manifest": manifest}).encode()
        try:
            code, _, data, _ = request(
                region.url + "/__vega/prefetch", "POST", body, timeout=timeout
            )
        except OSError as err:
            raise RegionError(region.name, f"unreachable at {region.url}: {err}") from None
        try:
            payload = json.loads(data)
        except ValueError:
            payload = {"error": data[:200].decode(errors="replace")}
        if code != 200 or not payload.get("ok"):
            raise RegionError(region.name, f"cannot load {manifest}: {payload.get('error')}")
        return payload

    def wait_serving(
        self, region: RegionInfo, deployment: str | None, timeout: float = 30.0
    ) -> float:
        """Seconds until the region serves ``deployment``; RegionError if it does not."""
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        delay = 0.002
        last = None
        while True:
            try:
                status = self.status(region, timeout=2.0)
            except RegionError:
                status = None
            if status is not None:
                if status["deployment"] == deployment:
                    return time.perf_counter() - started
                last = status
            if time.monotonic() > deadline:
                why = (last or {}).get("error") or "it did not switch"
                raise RegionError(
                    region.name, f"not serving {deployment} after {timeout:.0f}s: {why}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
