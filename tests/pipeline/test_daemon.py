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
    env["VEGA_DAG_DAEMON"] = "attach" if daemon else "0"
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
    assert project_of([]) == str(tmp_path.resolve())
    assert project_of(["-q", "--json"]) == str(tmp_path.resolve())
    assert project_of(["-j", "4", "sub"]) == str((tmp_path / "sub").resolve())
    assert project_of(["--explain", "other", "-q"]) == str((tmp_path / "other").resolve())


# --- The daemon a build starts by itself (VEGA_DAG_DAEMON unset or 1) -----------------


def vega_auto(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``vega-dag`` as a user runs it: a build may start the daemon (``env`` overrides)."""
    full = {k: v for k, v in os.environ.items() if k not in ("VEGA_DAG_DAEMON", "CI")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )


def wait_for_daemon(root: Path, *, other_than: int | None = None) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = call(root.resolve(), {"status": True}, timeout=5)
        if status is not None and status["pid"] != other_than:
            return status
        time.sleep(0.05)
    raise AssertionError(f"no daemon came up for {root}")


def test_the_first_build_starts_the_daemon_and_later_builds_use_it(
    project: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    for rel, text in FILES.items():
        (twin / rel).parent.mkdir(parents=True, exist_ok=True)
        (twin / rel).write_text(text)
    first = vega_auto("build", "--json", cwd=project)
    status = wait_for_daemon(project)
    assert status["auto"] and status["builds"] == 0  # the first build ran in its own process
    assert (
        built(first)["manifest"]
        == built(vega("build", "--json", cwd=twin, daemon=False))["manifest"]
    )

    for root in (project, twin):
        (root / "lib/util.py").write_text("def twice(x):\n    return x + x\n")
    warm = built(vega_auto("build", "--json", cwd=project))
    one_shot = built(vega("build", "--json", cwd=twin, daemon=False))
    assert warm["manifest"] == one_shot["manifest"]
    assert warm["compiled"] == one_shot["compiled"] == ["lib/util.py"]
    # Same messages and exit status as a one-shot build, failure included.
    (project / "lib/names.py").write_text("NAME = (\n")
    (twin / "lib/names.py").write_text("NAME = (\n")
    failed, failed_here = vega_auto("build", cwd=project), vega("build", cwd=twin, daemon=False)
    assert failed.returncode == failed_here.returncode == 1
    assert failed.stderr.replace(str(project), "P") == failed_here.stderr.replace(str(twin), "P")
    assert call(project.resolve(), {"status": True}, timeout=5)["builds"] == 2
    assert daemon_pid(project) == status["pid"]


def test_a_crashed_daemon_is_replaced_silently(project: Path) -> None:
    built(vega_auto("build", "--json", cwd=project))
    pid = wait_for_daemon(project)["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    (project / "lib/util.py").write_text("def twice(x):\n    return x + x\n")
    result = vega_auto("build", "--json", cwd=project)
    assert result.stderr == ""
    assert built(result)["compiled"] == ["lib/util.py"]
    assert wait_for_daemon(project, other_than=pid)["pid"] != pid


@pytest.mark.parametrize(
    "env",
    [{"VEGA_DAG_DAEMON": "0"}, {"VEGA_DAG_DAEMON": "attach"}, {"CI": "true"}],
    ids=["opted-out", "attach-only", "ci"],
)
def test_no_daemon_is_started_when_the_environment_says_so(
    project: Path, env: dict[str, str]
) -> None:
    from vega_dag.daemon.paths import daemon_log

    built(vega_auto("build", "--json", cwd=project, **env))
    # spawn() creates the log before it returns: no log, no daemon, ever.
    assert not daemon_log(project.resolve()).exists()


def test_ci_starts_one_when_asked(project: Path) -> None:
    built(vega_auto("build", "--json", cwd=project, CI="true", VEGA_DAG_DAEMON="1"))
    assert wait_for_daemon(project)["auto"]


def test_the_project_can_opt_out(project: Path) -> None:
    from vega_dag.daemon.paths import daemon_log

    pyproject = project / "pyproject.toml"
    pyproject.write_text("[tool.vega]\ndaemon = false\n")
    first = built(vega_auto("build", "--json", cwd=project))
    assert not daemon_log(project.resolve()).exists()
    # The key is not part of the build's identity.
    pyproject.write_text("[tool.vega]\n")
    assert built(vega_auto("build", "--json", cwd=project))["manifest"] == first["manifest"]


def test_a_started_daemon_stops_when_the_project_opts_out(project: Path) -> None:
    built(vega_auto("build", "--json", cwd=project))
    pid = wait_for_daemon(project)["pid"]
    (project / "pyproject.toml").write_text("[tool.vega]\ndaemon = false\n")
    (project / "lib/util.py").write_text("def twice(x):\n    return x + x\n")
    result = built(vega_auto("build", "--json", cwd=project))  # built here, the daemon gone
    assert result["compiled"] == ["lib/util.py"]
    from vega_dag.processes import pid_alive

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_two_daemons_started_at_once_leave_one(project: Path) -> None:
    command = [sys.executable, "-m", "vega_dag.daemon.server", str(project.resolve())]
    procs = [
        subprocess.Popen([*command, "--idle-timeout", "60"], stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    status = wait_for_daemon(project)
    loser = next(p for p in procs if p.pid != status["pid"])
    assert loser.wait(timeout=30) == 0
    assert call(project.resolve(), {"status": True}, timeout=5)["pid"] == status["pid"]


def test_policy_and_idle_timeout_from_the_environment() -> None:
    from vega_dag.daemon.autostart import DEFAULT_IDLE_TIMEOUT, idle_timeout, policy

    assert policy({}) == "start"
    assert policy({"CI": "true"}) == policy({"CI": "1"}) == "attach"
    assert policy({"CI": "false"}) == "start"
    assert policy({"CI": "true", "VEGA_DAG_DAEMON": "1"}) == "start"
    assert policy({"VEGA_DAG_DAEMON": "0"}) == "off"
    assert policy({"VEGA_DAG_DAEMON": "attach"}) == "attach"
    assert idle_timeout({}) == DEFAULT_IDLE_TIMEOUT
    assert idle_timeout({"VEGA_DAG_DAEMON_IDLE_TIMEOUT": "30"}) == 30.0
    assert idle_timeout({"VEGA_DAG_DAEMON_IDLE_TIMEOUT": "soon"}) == DEFAULT_IDLE_TIMEOUT


def _same_answer(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``vega-dag ARGS`` through the daemon and in its own process: the same answer."""
    served, here = vega(*args, cwd=project), vega(*args, cwd=project, daemon=False)
    assert (served.returncode, served.stdout, served.stderr) == (
        here.returncode,
        here.stdout,
        here.stderr,
    )
    return served


def test_what_the_daemon_answers_is_what_a_one_shot_build_answers(project: Path) -> None:
    """Same stdout, stderr and exit status through the fast client as without it."""
    assert vega("daemon", "start", str(project), cwd=project).returncode == 0

    def builds() -> int:
        return call(project.resolve(), {"status": True}, timeout=10)["builds"]

    built(vega("build", "--json", cwd=project))
    assert builds() == 1
    # A no-op answers the same (its time aside).
    served, here = vega("build", cwd=project), vega("build", cwd=project, daemon=False)
    assert served.returncode == here.returncode == 0
    assert served.stdout.split("Built in")[0] == here.stdout.split("Built in")[0]
    assert served.stdout.splitlines()[-1] == here.stdout.splitlines()[-1]  # the manifest
    # A build error, human and --json.
    (project / "lib/names.py").write_text("NAME = (\n")
    assert _same_answer(project, "build").returncode == 1
    assert _same_answer(project, "build", "--json").returncode == 1
    (project / "lib/names.py").write_text("NAME = 'n'\n")
    # A bad option (click's usage error) and a bad configuration.
    assert _same_answer(project, "build", "-j", "0").returncode == 2
    (project / "pyproject.toml").write_text("[tool.vega]\nno_such_key = 1\n")
    failed = _same_answer(project, "build")
    assert failed.returncode == 1 and "no_such_key" in failed.stderr
    assert builds() == 6  # every one of them served by the daemon


def test_a_build_the_daemon_serves_imports_almost_nothing(project: Path) -> None:
    """The client is the standard library's socket and json: no click, msgspec, extension."""
    assert vega("daemon", "start", str(project), cwd=project).returncode == 0
    built(vega("build", "--json", cwd=project))
    heavy = ("click", "rich", "msgspec", "networkx", "pluggy", "pathlib", "typing", "hashlib")
    code = "import sys; before = set(sys.modules); sys.argv = ['vega-dag', 'build', '-q']\n"
    code += "from vega_dag.entry import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
    code += f"print(sorted(m for m in sys.modules if m not in before and m in {heavy!r}"
    code += " or m.startswith(('click', 'msgspec', 'networkx', 'vega_dag._core', 'vega_dag.cli'))))"
    env = {**os.environ, "VEGA_DAG_DAEMON": "attach"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"
    assert call(project.resolve(), {"status": True}, timeout=10)["builds"] == 2
