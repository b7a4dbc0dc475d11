"""The drift workers started ahead of their builds, and the build daemon running the check.

A worker imports the build's code before its spec arrives (in one-shot runs,
while the check finds the change and copies the project; in the daemon, a
spare pair waits between checks): each still starts fresh under its own
conditions, so every injected nondeterminism is found and named as in a
one-shot check, the first check a daemon serves and the next ones alike.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest

from tests.drift.conftest import drift_project, git, vega
from vega_dag.daemon.client import call
from vega_dag.daemon.paths import daemon_pid_file


def entry(
    *args: str, cwd: Path, site: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The console entry point, its daemon fast path included (the daemon only attached)."""
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), full.get("PYTHONPATH")]))
    full["VEGA_DAG_DAEMON"] = "attach"
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def daemon_project(tmp_path: Path, nondet_plugin: Path):
    """(start the daemon for root with env, scratch dir); the daemon is stopped after."""
    started: list[Path] = []

    def start(root: Path, env: dict[str, str]) -> None:
        proc = entry("daemon", "start", str(root), cwd=root, site=nondet_plugin, env=env)
        assert proc.returncode == 0, proc.stderr
        started.append(root.resolve())

    yield start
    for root in started:
        if call(root, {"stop": True}, timeout=10) is None and daemon_pid_file(root).exists():
            with suppress(ProcessLookupError):
                os.kill(int(daemon_pid_file(root).read_text()), signal.SIGKILL)


def served(root: Path) -> int:
    return call(root.resolve(), {"status": True}, timeout=10)["builds"]


@pytest.mark.parametrize(("step", "variable"), [("set-order", "ORDER"), ("cwd", "WHERE")])
def test_one_shot_check_names_a_module_that_reads_the_hash_seed_or_directory(
    tmp_path: Path, nondet_plugin: Path, step: str, variable: str
) -> None:
    root = drift_project(tmp_path / "proj", step)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    (root / "lib/clock.py").write_text((root / "lib/clock.py").read_text() + "\nX = 1\n")
    proc = vega("drift", "--json", str(root), cwd=root, site=nondet_plugin)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["touched"] == ["lib/clock.py"]
    assert {d["name"] for d in report["drifts"]} == {"lib/clock.py", "/api/time"}
    module = next(d for d in report["drifts"] if d["name"] == "lib/clock.py")
    assert any(f"'{variable}'" in line for line in module["difference"])


def test_the_daemon_runs_the_check_and_finds_what_a_one_shot_check_finds(
    tmp_path: Path, nondet_plugin: Path, daemon_project
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"VEGA_DAG_DRIFT_TMPDIR": str(scratch)}
    root = drift_project(tmp_path / "proj", "set-order")
    daemon_project(root, env)
    results = []
    # The first check starts its own workers; the next ones take the spare pair.
    for _ in range(3):
        proc = entry("drift", "--json", "--all", str(root), cwd=root, site=nondet_plugin, env=env)
        assert proc.returncode == 1, proc.stderr
        report = json.loads(proc.stdout)
        results.append(report)
        assert {d["name"] for d in report["drifts"]} == {"lib/clock.py", "/api/time"}
        module = next(d for d in report["drifts"] if d["name"] == "lib/clock.py")
        assert any("'ORDER'" in line for line in module["difference"])
    assert served(root) == 3
    # A fresh random hash seed for every check's build b.
    seeds = {r["conditions"]["b"].split("PYTHONHASHSEED=")[1].split()[0] for r in results}
    assert len(seeds) == 3
    one_shot = vega("drift", "--all", str(root), cwd=root, site=nondet_plugin, env=env)
    in_daemon = entry("drift", "--all", str(root), cwd=root, site=nondet_plugin, env=env)
    assert one_shot.returncode == in_daemon.returncode == 1

    def heads(text: str) -> list[str]:
        # Build b's digests differ: its hash seed is random in every check.
        return [re.sub(r"b [0-9a-f]{12}", "b …", ln) for ln in text.splitlines() if ln[:1] == "✗"]

    assert heads(one_shot.stdout) == heads(in_daemon.stdout)
    assert len(heads(one_shot.stdout)) == 3
    # The daemon's work after its answer is done before it answers the next
    # request: one spare pair waits in the scratch directory; its exit removes it.
    assert served(root) == 4
    assert len(list(scratch.iterdir())) == 1
    assert call(root.resolve(), {"stop": True}, timeout=10) is not None
    deadline = time.monotonic() + 30
    while list(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(scratch.iterdir()) == []


def test_a_spare_started_in_another_environment_is_not_used(
    tmp_path: Path, nondet_plugin: Path, daemon_project
) -> None:
    """The environment is an input: a check in another one starts workers in it."""
    root = drift_project(tmp_path / "proj", "env-leak")
    built = vega(
        "build", "-q", str(root), cwd=root, site=nondet_plugin, env={"NONDET_FLAVOUR": "x"}
    )
    assert built.returncode == 0, built.stderr
    daemon_project(root, {})
    same = {"NONDET_FLAVOUR": "x"}
    for _ in range(2):  # the second on the spare started in this environment
        proc = entry("drift", "--json", "--all", str(root), cwd=root, site=nondet_plugin, env=same)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    other = {"NONDET_FLAVOUR": "y"}
    proc = entry("drift", "--json", "--all", str(root), cwd=root, site=nondet_plugin, env=other)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    module = next(d for d in json.loads(proc.stdout)["drifts"] if d["name"] == "lib/clock.py")
    assert module["outputs"]["a"] == module["outputs"]["b"] != module["outputs"]["store"]
    assert any("'y'" in line for line in module["difference"])
    assert served(root) == 3
