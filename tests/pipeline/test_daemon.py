"""The build daemon: builds handed to a resident process give what a one-shot build gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline.two_routes import FILES
from vega_dag.daemon.client import call, project_of
from vega_dag.daemon.paths import daemon_pid_file, daemon_socket


def vega(*args: str, cwd: Path, daemon: bool = True) -> subprocess.CompletedProcess[str]:
    """The real console entry point (its daemon fast path included)."""
    env = dict(os.environ)
    env["VEGA_DAG_DAEMON"] = "1" if daemon else "0"
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def project(tree):
    root = tree(FILES)
    yield root
    reply = call(root.resolve(), {"stop": True}, timeout=10)
    if reply is None and daemon_pid_file(root.resolve()).exists():
        pid = int(daemon_pid_file(root.resolve()).read_text())
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def built(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def daemon_pid(root: Path) -> int:
    return int(daemon_pid_file(root.resolve()).read_text())


def test_builds_in_the_daemon_match_one_shot_builds(project: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    for rel, text in FILES.items():
        (twin / rel).parent.mkdir(parents=True, exist_ok=True)
        (twin / rel).write_text(text)

    start = vega("daemon", "start", str(project), cwd=project)
    assert start.returncode == 0 and "running" in start.stdout, start.stderr
    pid = daemon_pid(project)
    assert vega("daemon", "start", str(project), cwd=project).stdout.startswith(
        f"✓ The build daemon for {project.resolve()} already runs (pid {pid})"
    )

    cold, cold_twin = (
        built(vega("build", "--json", cwd=project)),
        built(vega("build", "--json", cwd=twin, daemon=False)),
    )
    assert cold["manifest"] == cold_twin["manifest"]
    assert (cold["modules_compiled"], cold["bundles_built"]) == (5, 2)

    for root in (project, twin):
        (root / "lib/util.py").write_text("def twice(x):\n    return x + x\n")
    warm, warm_twin = (
        built(vega("build", "--json", cwd=project)),
        built(vega("build", "--json", cwd=twin, daemon=False)),
    )
    assert warm["manifest"] == warm_twin["manifest"]
    assert (warm["modules_compiled"], warm["bundles_built"], warm["bundles_cached"]) == (1, 1, 1)
    assert warm["compiled"] == ["lib/util.py"]
    # The human output and errors come back too, with the exit status.
    (project / "lib/names.py").write_text("NAME = (\n")
    failed = vega("build", str(project), cwd=tmp_path)
    assert failed.returncode == 1
    assert "lib/names.py:1" in failed.stderr
    (project / "lib/names.py").write_text("NAME = 'm'\n")
    ok = vega("build", str(project), cwd=tmp_path)
    assert ok.returncode == 0 and "1 modules compiled" in ok.stdout
    assert daemon_pid(project) == pid  # all of it in the one daemon


def test_state_written_by_another_build_is_not_shadowed(project: Path) -> None:
    """A build without the daemon (a deploy, a bisection) moves the state: the daemon rereads it."""
    assert vega("daemon", "start", str(project), cwd=project).returncode == 0
    built(vega("build", "--json", cwd=project))
    (project / "lib/util.py").write_text("def twice(x):\n    return 2 * x + 0\n")
    outside = built(vega("build", "--json", cwd=project, daemon=False))
    assert outside["modules_compiled"] == 1
    # The daemon's memory of the state is older than the file: it must see a no-op.
    again = built(vega("build", "--json", cwd=project))
    assert (again["modules_compiled"], again["bundles_built"]) == (0, 0)
    assert again["manifest"] == outside["manifest"]


def test_a_dead_daemon_falls_back_to_building_here(project: Path) -> None:
    assert vega("daemon", "start", str(project), cwd=project).returncode == 0
    os.kill(daemon_pid(project), signal.SIGKILL)
    time.sleep(0.1)
    assert daemon_socket(project.resolve()).exists()  # stale
    result = built(vega("build", "--json", cwd=project))
    assert result["modules_compiled"] == 5
    assert not daemon_socket(project.resolve()).exists()  # cleaned up by the client


def test_another_version_stops_the_daemon_and_builds_alone(project: Path) -> None:
    assert vega("daemon", "start", str(project), cwd=project).returncode == 0
    pid = daemon_pid(project)
    reply = call(project.resolve(), {"argv": ["build"], "version": "0.0.0-other"}, timeout=10)
    assert reply is not None and "fallback" in reply
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and daemon_socket(project.resolve()).exists():
        time.sleep(0.05)
    assert not daemon_socket(project.resolve()).exists()
    from vega_dag.processes import pid_alive

    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_stop_and_status(project: Path) -> None:
    assert vega("daemon", "status", str(project), cwd=project).returncode == 1
    started = vega("daemon", "start", str(project), "--idle-timeout", "60", cwd=project)
    assert started.returncode == 0
    status = vega("daemon", "status", str(project), cwd=project)
    assert status.returncode == 0 and f"pid {daemon_pid(project)}" in status.stdout
    # lib/ and api/ and the root; no build yet, so the first one will scan.
    assert "watching 3 directories; 0 full scan(s)" in status.stdout, status.stdout
    built(vega("build", "--json", cwd=project))
    (project / "lib/util.py").write_text("def twice(x):\n    return x * 2\n")
    assert built(vega("build", "--json", cwd=project))["compiled"] == ["lib/util.py"]
    status = vega("daemon", "status", str(project), cwd=project)
    assert "1 full scan(s), the last because: first build" in status.stdout, status.stdout
    stop = vega("daemon", "stop", str(project), cwd=project)
    assert "Stopped the build daemon" in stop.stdout
    assert not daemon_socket(project.resolve()).exists()
    assert "No build daemon runs" in vega("daemon", "stop", str(project), cwd=project).stdout


def test_idle_timeout(project: Path) -> None:
    assert vega("daemon", "start", str(project), "--idle-timeout", "1", cwd=project).returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and daemon_socket(project.resolve()).exists():
        time.sleep(0.1)
    assert not daemon_socket(project.resolve()).exists()


def test_project_of_reads_the_path_argument(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert project_of([]) == tmp_path.resolve()
    assert project_of(["-q", "--json"]) == tmp_path.resolve()
    assert project_of(["-j", "4", "sub"]) == (tmp_path / "sub").resolve()
    assert project_of(["--explain", "other", "-q"]) == (tmp_path / "other").resolve()
