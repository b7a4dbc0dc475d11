"""Starting a project's build daemon: by hand (``vega-dag daemon start``) or by the first build.

``vega-dag build``, ``deploy`` and ``drift`` start the daemon in the
background when none answers (as Bazel's client starts its server), so the
next build is handed to it. Whether they may is ``policy()``:

- ``VEGA_DAG_DAEMON=0``: never use a daemon, never start one;
- ``VEGA_DAG_DAEMON=attach``: use a running daemon, never start one (the
  test suite's default, so that no test leaves a process behind by accident);
- ``VEGA_DAG_DAEMON=1``: use one, start one when none answers, in CI too;
- unset (or anything else): as ``1``, except in CI (``$CI`` set, and not
  ``false``/``0``), where it is as ``attach``: a CI job builds a checkout once
  or twice, and a process outliving its step only costs the runner
  (Turborepo's daemon stays off in CI for the same reason);
- ``[tool.vega] daemon = false`` in the project: never start one.

The daemon it starts exits after ``VEGA_DAG_DAEMON_IDLE_TIMEOUT`` seconds
without a build (default 3 h). A daemon that died is replaced by the next
build; two commands starting one at the same time start one (the server holds
a lock on its directory for its whole life; the second exits).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

#: Seconds without a build after which a daemon exits (``daemon start``'s default too).
DEFAULT_IDLE_TIMEOUT = 3 * 3600.0

Policy = Literal["off", "attach", "start"]


def policy(env: dict[str, str] | os._Environ[str] | None = None) -> Policy:
    """What the environment allows: ``off``, ``attach`` (use, never start) or ``start``."""
    env = os.environ if env is None else env
    value = env.get("VEGA_DAG_DAEMON", "").strip().lower()
    if value == "0":
        return "off"
    if value == "attach":
        return "attach"
    if value == "1":
        return "start"
    ci = env.get("CI", "").strip().lower()
    return "attach" if ci not in ("", "0", "false", "no") else "start"


def idle_timeout(env: dict[str, str] | os._Environ[str] | None = None) -> float:
    """``VEGA_DAG_DAEMON_IDLE_TIMEOUT`` (seconds, at least 1), else the default."""
    env = os.environ if env is None else env
    try:
        return max(1.0, float(env["VEGA_DAG_DAEMON_IDLE_TIMEOUT"]))
    except (KeyError, ValueError):
        return DEFAULT_IDLE_TIMEOUT


def spawn(root: Path, idle_timeout: float, *, auto: bool) -> None:
    """Start ``root``'s daemon in its own session, its output to its log; returns at once."""
    from vega_dag.daemon.paths import daemon_dir, daemon_log
    from vega_dag.processes import spawn_detached

    daemon_dir(root).mkdir(parents=True, exist_ok=True, mode=0o700)
    command = [sys.executable, "-m", "vega_dag.daemon.server", str(root)]
    command += ["--idle-timeout", str(idle_timeout)] + (["--auto"] if auto else [])
    spawn_detached(command, daemon_log(root), root)


def ensure_started(root: Path, enabled_in_config: bool) -> bool:
    """Start ``root``'s daemon in the background if allowed and none answers; whether it did.

    Called by a command that is about to build in its own process. Inside a
    daemon (which runs the same command) it does nothing.
    """
    from vega_dag.daemon import warm

    if warm.enabled() or not enabled_in_config or policy() != "start":
        return False
    from vega_dag.daemon.client import call

    if call(root, {"status": True}, timeout=2.0) is not None:
        return False
    try:
        spawn(root, idle_timeout(), auto=True)
    except OSError:
        return False  # no daemon: builds stay one-shot, as correct
    return True


def ensure_started_for(path: Path) -> bool:
    """``ensure_started`` for the project at ``path``; nothing on a configuration error
    (the command reports it)."""
    if policy() != "start":
        return False
    from vega_dag.config import load_config
    from vega_dag.errors import VegaError

    try:
        config = load_config(path)
    except VegaError:
        return False
    return ensure_started(config.root, config.vega.daemon)
