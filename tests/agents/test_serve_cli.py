"""`vega-dag region serve` refuses bad input with a clear message, before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rollout.helpers import vega


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "a region agent learns its pointer from NATS: give --pointers"),
        (["--pointers", "http://x:1"], 'expected "nats://HOST:PORT"'),
        (["--pointers", "nats://127.0.0.1:4222", "--store", "s3://B"], 'expected "s3://BUCKET'),
        (["--pointers", "nats://127.0.0.1:4222", "--listen", "nowhere"], "expected HOST:PORT"),
        (["--pointers", "nats://127.0.0.1:4222", "--trust", "/nonexistent"], "not a directory"),
    ],
)
def test_bad_flags_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    proc = vega("region", "serve", "--name", "fra", "--dir", str(tmp_path / "d"), *args,
                env={"VEGA_DAG_POINTERS": "", "VEGA_DAG_STORE": ""})  # fmt: skip
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_region_name_is_refused(tmp_path: Path) -> None:
    proc = vega("region", "serve", "--name", "a.b", "--pointers", "nats://127.0.0.1:4222")
    assert proc.returncode == 2
    assert "--name 'a.b': letters, digits" in proc.stderr


def test_agents_without_nats_pointers_are_refused(tmp_path: Path) -> None:
    from tests.rollout.helpers import write_project

    project = write_project(tmp_path / "proj")
    proc = vega("deploy", str(project), env={"VEGA_DAG_REGIONS": "agents", "VEGA_DAG_POINTERS": ""})
    assert proc.returncode == 1
    assert "region agents learn their pointers from NATS" in proc.stderr
    assert "Traceback" not in proc.stderr
    wrong = vega("status", str(project), env={"VEGA_DAG_REGIONS": "elsewhere"})
    assert wrong.returncode != 0 and "expected one of local, agents" in wrong.stderr
    assert "Traceback" not in wrong.stderr
