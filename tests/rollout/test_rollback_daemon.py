"""``vega-dag rollback`` served by the project's resident daemon says and does what a
one-shot rollback says and does.

The console script hands a rollback to the project's daemon when one runs
(``daemon.client``): the same stdout, stderr and exit status, the same
history row (actor and reason), the pointer store read afresh each time, and
a daemon that is gone, opted out of, or of another installation leaves the
rollback to the process that was asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.rollout.helpers import cli_env, served, vega, vega_json
from vega_dag.config import load_config
from vega_dag.daemon.client import call, install
from vega_dag.daemon.paths import daemon_pid_file, daemon_socket
from vega_dag.regions.fleet import LocalFleet
from vega_dag.rollout.pointers import PointerStore


def entry(*args: str, daemon: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """``vega-dag ARGS`` as a user runs it (served by a running daemon unless ``daemon``
    is False: ``VEGA_DAG_DAEMON=0``)."""
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        capture_output=True,
        text=True,
        env={**cli_env(), "VEGA_DAG_DAEMON": "attach" if daemon else "0", **env},
        timeout=120,
    )


def _shape(text: str) -> str | dict:
    """The output without its timings (and deployment ids, which differ by deploy)."""
    if text.startswith("{"):
        out = json.loads(text)
        out.pop("seconds", None)
        for region in out.get("regions", []):
            region["swap_seconds"] = "T"
        return out
    text = re.sub(r"\d+(\.\d+)?(ms|s)\b", "T", text)
    return re.sub(r"dpl_[0-9a-z]{8}", "dpl_X", text)


def rollbacks(root: Path) -> int:
    """How many rollbacks the project's daemon has served."""
    reply = call(root.resolve(), {"status": True}, timeout=10)
    assert reply is not None, "the daemon does not answer"
    return int(reply["rollbacks"])


@pytest.fixture
def daemon(project: Path):
    """The project's daemon, started by hand; stopped (or killed) however the test ends."""
    started = entry("daemon", "start", str(project))
    assert started.returncode == 0, started.stderr
    yield project
    root = project.resolve()
    if call(root, {"stop": True}, timeout=10) is None and daemon_pid_file(root).exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(daemon_pid_file(root).read_text()), signal.SIGKILL)


def last_rollback_event(root: Path) -> dict:
    store = PointerStore(LocalFleet(load_config(root)).db_path)
    try:
        entry = store.history(limit=1)[0]
    finally:
        store.close()
    return {"reason": entry.reason, "actor": entry.actor}


def same(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``vega-dag ARGS`` served, then one-shot: the same answer (timings aside)."""
    before = rollbacks(project)
    a, b = entry(*args, **env), entry(*args, daemon=False, **env)
    assert (a.returncode, _shape(a.stdout), _shape(a.stderr)) == (
        b.returncode,
        _shape(b.stdout),
        _shape(b.stderr),
    ), args
    assert rollbacks(project) == before + 1, "not served by the daemon"
    return a


def test_a_served_rollback_answers_as_a_one_shot_one(daemon: Path) -> None:
    project = daemon
    first = vega_json("deploy", str(project))["deployment"]
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(project))["deployment"]

    fast = entry("rollback", "--path", str(project))
    assert fast.returncode == 0, fast.stderr
    assert rollbacks(project) == 1
    assert set(served(project).values()) == {first}
    served_event = last_rollback_event(project)

    # Another process moves the pointers meanwhile: the daemon reads them afresh.
    third = vega_json("deploy", str(project))["deployment"]
    assert set(served(project).values()) == {third}
    again = entry("rollback", "--path", str(project), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deployment"] == third
    assert {r["to"] for r in json.loads(again.stdout)["regions"]} == {first}
    assert set(served(project).values()) == {first}
    assert rollbacks(project) == 2

    vega_json("deploy", str(project))
    slow = entry("rollback", "--path", str(project), daemon=False)
    assert slow.returncode == 0, slow.stderr
    assert set(served(project).values()) == {first}
    assert rollbacks(project) == 2  # that one ran in its own process
    assert "✓ Rolled back" in fast.stdout and "\033" not in fast.stdout  # not a terminal
    assert _shape(fast.stdout) == _shape(slow.stdout) and fast.stderr == slow.stderr == ""
    # The same history row: the actor is the client's, not the daemon's.
    assert served_event == last_rollback_event(project)
    assert served_event["actor"].startswith(os.environ.get("USER") or "")

    same(project, "rollback", second, "--path", str(project))  # nothing left to roll back
    same(project, "rollback", "dpl_nonesuch", "--path", str(project))  # an error, exit 1
    same(project, "rollback", "dpl_nonesuch", f"--path={project}", "--json")
    # Click's own usage errors, from the daemon too.
    assert same(project, "rollback", "a", "b", "--path", str(project)).returncode == 2

    # A held deploy lock: the same refusal, naming its holder.
    store = PointerStore(LocalFleet(load_config(project)).db_path)
    try:
        with store.deploy_lock("deploy by someone@elsewhere"):
            held = same(project, "rollback", "--path", str(project), "--lock-timeout", "0")
    finally:
        store.close()
    assert held.returncode == 1 and "someone@elsewhere" in held.stderr, held.stderr

    # A bad configuration: the same message.
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text + "\n[tool.vega.nonesuch]\nx = 1\n")
    bad = same(project, "rollback", "--path", str(project))
    assert bad.returncode == 1 and "nonesuch" in bad.stderr, bad.stderr
    (project / "pyproject.toml").write_text(text)

    # A project that opts out is rolled back in the process that was asked.
    (project / "pyproject.toml").write_text(
        text.replace("[tool.vega]\n", "[tool.vega]\ndaemon = false\n")
    )
    count = rollbacks(project)
    out = entry("rollback", second, "--path", str(project))
    assert out.returncode == 0 and "nothing to roll back" in out.stdout, out.stderr
    assert rollbacks(project) == count


def test_a_rollback_to_a_record_no_trusted_key_signed_is_refused_alike(
    daemon: Path, tmp_path: Path
) -> None:
    project = daemon
    unsigned = vega_json("deploy", str(project))["deployment"]
    keys = tmp_path / "keys"
    made = vega("keys", "generate", "--name", "k", "--dir", str(keys), "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert vega("keys", "trust", key["public"], str(project)).returncode == 0
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    signed = vega("deploy", str(project), "--json", env={"VEGA_DAG_SIGNING_KEY": key["private"]})
    assert signed.returncode == 0, signed.stderr + signed.stdout
    dpl = json.loads(signed.stdout)["deployment"]

    refused = same(project, "rollback", "--path", str(project))
    assert refused.returncode == 1, refused.stdout
    assert "not signed" in refused.stderr and unsigned in refused.stderr, refused.stderr
    assert "nothing was changed" in refused.stderr, refused.stderr
    assert set(served(project).values()) == {dpl}
    rows = {r["name"]: r for r in vega_json("status", str(project))["regions"]}
    assert {r["deployment"] for r in rows.values()} == {dpl}  # no pointer moved


def test_a_killed_daemon_or_another_installation_leaves_it_to_the_command(
    daemon: Path,
) -> None:
    project = daemon
    first = vega_json("deploy", str(project))["deployment"]
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    vega_json("deploy", str(project))

    # Where the client's stderr is a terminal, the served error is coloured as the
    # one-shot command colours it there.
    asked = {"argv": ["rollback", "dpl_nonesuch", "--path", str(project)], "cwd": str(project)}
    asked |= {"env": cli_env(), "version": vega_json_version(), "install": install()}
    reply = call(project.resolve(), {**asked, "tty": [False, True]}, timeout=60)
    assert reply is not None and reply["code"] == 1, reply
    assert reply["stderr"].startswith("\033[31m✗ Rollback failed: "), reply
    plain = call(project.resolve(), {**asked, "tty": [False, False]}, timeout=60)
    assert plain is not None and plain["stderr"].startswith("✗ Rollback failed: "), plain

    # Another installation's daemon (same version, other code) does not serve it.
    other = {"argv": ["rollback", "--path", str(project)], "cwd": str(project), "env": {}}
    other |= {"version": vega_json_version(), "install": [sys.prefix, "/elsewhere/vega_dag"]}
    reply = call(project.resolve(), other, timeout=10)
    assert reply is not None and "fallback" in reply and "code" not in reply, reply
    assert install()[1] in reply["fallback"]
    gone_by = time.monotonic() + 10
    while daemon_socket(project.resolve()).exists() and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not daemon_socket(project.resolve()).exists()  # it exits: a new one is started

    assert entry("daemon", "start", str(project)).returncode == 0
    os.kill(int(daemon_pid_file(project.resolve()).read_text()), signal.SIGKILL)
    time.sleep(0.1)
    assert daemon_socket(project.resolve()).exists()  # stale
    out = entry("rollback", "--path", str(project))
    assert out.returncode == 0, out.stderr
    assert "✓ Rolled back" in out.stdout
    assert set(served(project).values()) == {first}
    assert not daemon_socket(project.resolve()).exists()  # cleaned up by the client


def test_a_daemon_that_dies_with_the_rollback_is_not_run_again(project: Path) -> None:
    """A rollback the daemon took and never answered is reported, not run again here:
    if its pointer write happened, a second rollback would go one deployment further."""
    import socket
    import threading

    vega_json("deploy", str(project))
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(project))["deployment"]
    path = daemon_socket(project.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    taken: list[bytes] = []

    def take_and_die() -> None:  # reads the whole request, answers nothing
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(1 << 16):
                taken.append(chunk)

    thread = threading.Thread(target=take_and_die, daemon=True)
    thread.start()
    try:
        out = entry("rollback", "--path", str(project))
    finally:
        thread.join(timeout=10)
        server.close()
        path.unlink(missing_ok=True)
    assert b'"rollback"' in b"".join(taken)  # it was handed over
    assert out.returncode == 1, out.stdout + out.stderr
    assert "daemon stopped during the rollback" in out.stderr, out.stderr
    assert "vega-dag status" in out.stderr
    assert set(served(project).values()) == {second}  # and not run again here


def vega_json_version() -> str:
    from vega_dag import __version__

    return __version__
