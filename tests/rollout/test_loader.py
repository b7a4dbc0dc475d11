"""The host's loader: each deployment is imported once, every region's worker is a fork of it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.rollout.helpers import get, served, stop_fleet, vega_json, write_project
from vega_dag.config import load_config
from vega_dag.processes import pid_alive
from vega_dag.regions.fleet import LocalFleet
from vega_dag.regions.loader import loader_record


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def serving_workers(root: Path) -> dict[str, int]:
    """Region → pid of the worker serving its current deployment."""
    fleet = LocalFleet(load_config(root))
    out = {}
    for info in fleet.regions():
        status = fleet.status(info)
        out[info.name] = next(
            w["pid"] for w in status["workers"] if w["manifest"] == status["manifest"]
        )
    return out


def bump(root: Path, version: str) -> None:
    (root / "lib/version.py").write_text(f'VERSION = "{version}"\n')


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_every_region_worker_is_a_fork_of_one_template(project):
    first = vega_json("deploy", str(project))
    loader = json.loads(loader_record(project / ".vega" / "fleet").read_text())["pid"]
    workers = serving_workers(project)
    templates = {ppid(pid) for pid in workers.values()}
    assert len(workers) == 3 and len(templates) == 1
    (template,) = templates
    assert ppid(template) == loader
    # Each region its own process, answering for itself.
    assert len(set(workers.values())) == 3
    assert set(served(project).values()) == {first["deployment"]}

    bump(project, "v2")
    second = vega_json("deploy", str(project))
    new_workers = serving_workers(project)
    (new_template,) = {ppid(pid) for pid in new_workers.values()}
    assert new_template != template and ppid(new_template) == loader
    assert set(served(project).values()) == {second["deployment"]}
    # The previous deployment's workers stay warm (a rollback is a swap).
    rolled = vega_json("rollback", "--path", str(project))
    assert rolled["deployment"] == second["deployment"]
    assert set(served(project).values()) == {first["deployment"]}
    assert serving_workers(project) == workers


def test_a_cloned_worker_exits_with_its_region(project):
    vega_json("deploy", str(project))
    workers = serving_workers(project)
    fleet = LocalFleet(load_config(project))
    iad = next(r for r in fleet.regions() if r.name == "iad")
    os.kill(iad.pid, signal.SIGKILL)
    assert wait_gone(workers["iad"]), "the worker outlived its region"
    assert pid_alive(workers["fra"]) and pid_alive(workers["sfo"])


def test_without_the_loader_each_region_loads_with_its_own_zygote(project):
    vega_json("deploy", str(project))
    record = loader_record(project / ".vega" / "fleet")
    os.killpg(json.loads(record.read_text())["pgid"], signal.SIGKILL)
    bump(project, "v3")
    out = vega_json("deploy", str(project))
    assert out["status"] == "live"
    assert set(served(project).values()) == {out["deployment"]}
    fleet = LocalFleet(load_config(project))
    regions = {r.name: r.pid for r in fleet.regions()}
    for name, pid in serving_workers(project).items():
        # worker → the region's zygote → the region
        assert ppid(ppid(pid)) == regions[name]


def test_a_default_fleet_of_24_regions_shares_one_load(tmp_path):
    from tests.rollout.helpers import stop_fleet, write_project

    root = write_project(tmp_path / "proj24", regions=24)
    try:
        out = vega_json("deploy", str(root))
        assert out["status"] == "live" and len(out["regions"]) == 24
        assert all(r["outcome"] == "promoted" for r in out["regions"])
        workers = serving_workers(root)
        assert len(set(workers.values())) == 24
        assert len({ppid(pid) for pid in workers.values()}) == 1
        assert set(served(root).values()) == {out["deployment"]}
    finally:
        stop_fleet(root)


def test_proxied_answers_carry_each_header_once(project):
    import http.client
    from urllib.parse import urlsplit

    out = vega_json("deploy", str(project))
    url = urlsplit(out["regions"][0]["url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("GET", "/api/items/3")
    response = conn.getresponse()
    response.read()
    names = [k.lower() for k, _ in response.getheaders()]
    assert response.status == 200
    for name in ("date", "server", "content-length", "x-vega-region", "x-vega-deployment"):
        assert names.count(name) == 1, (name, response.getheaders())
    conn.close()


POOLED = {
    # A thread pool the route's first call starts (as Datasette's SQL threads
    # are): the loader's warm-up would start it in the template, and a fork
    # copies no thread, so a clone's pool would wait for one that is not there.
    "api/pooled.py": (
        "from concurrent.futures import ThreadPoolExecutor\n\n"
        "POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix='sql')\n\n\n"
        "def handler(request):\n"
        "    return {'answer': POOL.submit(lambda: 42).result(timeout=5)}\n"
    ),
}


def test_a_deployment_that_leaves_threads_running_is_loaded_by_each_region(tmp_path):
    root = write_project(tmp_path / "proj", extra=POOLED)
    try:
        out = vega_json("deploy", str(root))
        assert out["status"] == "live", out["problems"]
        fleet = LocalFleet(load_config(root))
        regions = {r.name: r for r in fleet.regions()}
        for name, pid in serving_workers(root).items():
            # Not a clone of the template: the region's zygote loaded it.
            assert ppid(ppid(pid)) == regions[name].pid
            status, _, body = get(regions[name].url, "/api/pooled")
            assert (status, json.loads(body)) == (200, {"answer": 42})
    finally:
        stop_fleet(root)
