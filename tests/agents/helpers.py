"""Region agents for tests: each a `vega-dag region serve` process in its own directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.rollout.helpers import cli_env, vega, write_project
from vega_dag.regions.fleet import request

AGENT_BACKEND = """
[tool.vega.backend]
store = "{store}"
pointers = "{pointers}"
regions = "agents"
"""


@dataclass
class Backends:
    store: str
    pointers: str
    env: dict[str, str]


@dataclass
class Agent:
    name: str
    dir: Path
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        record = self.dir / "fleet" / "regions" / f"{self.name}.json"
        return json.loads(record.read_text())["url"]


@dataclass
class Agents:
    backends: Backends
    base: Path
    running: dict[str, Agent] = field(default_factory=dict)

    def start(
        self,
        name: str,
        *,
        trust: Path | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        directory: Path | None = None,
        listen: str | None = None,
        url: str | None = None,
    ) -> Agent:
        if name in self.running:
            self.kill(name)  # what is left of it (its zygote and workers, after a -9)
        directory = directory or self.base / name
        directory.mkdir(parents=True, exist_ok=True)
        record = directory / "fleet" / "regions" / f"{name}.json"
        record.unlink(missing_ok=True)
        log = self.base / f"{name}.log"
        args = [sys.executable, "-c", "from vega_dag.cli import main; main()", "region", "serve",
                "--name", name, "--dir", str(directory), "--store", self.backends.store,
                "--pointers", self.backends.pointers]  # fmt: skip
        if trust is not None:
            args += ["--trust", str(trust)]
        if listen is not None:
            args += ["--listen", listen]
        if url is not None:
            args += ["--url", url]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                # No project here: the agent knows only its flags and the environment.
                cwd=directory,
                env={**cli_env(), **self.backends.env, **(env or {})},
                start_new_session=True,
            )
        agent = Agent(name, directory, proc, log)
        self.running[name] = agent
        if wait:
            self.wait_reporting([name])
        return agent

    def start_many(self, names: list[str], **kwargs) -> list[Agent]:
        started = [self.start(n, wait=False, **kwargs) for n in names]
        self.wait_reporting(names)
        return started

    def wait_reporting(self, names: list[str], timeout: float = 60.0) -> None:
        """Until each agent answers on its port and has written its status key."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                agent = self.running[name]
                if agent.proc.poll() is not None:
                    raise AssertionError(f"agent {name} exited: {agent.log.read_text()[-2000:]}")
                with contextlib.suppress(OSError, ValueError, KeyError):
                    code, _, body, _ = request(agent.url + "/__vega/status", timeout=1.0)
                    if code == 200 and json.loads(body).get("reported"):
                        pending.discard(name)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"agents {sorted(pending)} did not start")
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        agent = self.running.pop(name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.kill(name)

    def served(self) -> dict[str, str | None]:
        """Agent → the deployment named by its answer to GET /api."""
        out = {}
        for name, agent in self.running.items():
            status, headers, _, _ = request(agent.url + "/api", timeout=5.0)
            out[name] = headers.get("x-vega-deployment") if status == 200 else None
        return out


def agent_project(root: Path, backends: Backends, **kwargs) -> Path:
    root = write_project(root, **kwargs)
    with open(root / "pyproject.toml", "a") as f:
        f.write(AGENT_BACKEND.format(store=backends.store, pointers=backends.pointers))
    return root


def deploy(root: Path, *args: str, env: dict[str, str] | None = None):
    return vega("deploy", str(root), "--json", *args, env=env)


def until(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
