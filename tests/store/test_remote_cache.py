"""The shared build cache on S3, against a real SeaweedFS (tests/store/conftest.py).

Two "machines" are two copies of examples/shop-api in different directories,
each with its own ``.vega`` store, sharing one bucket prefix. The lock is
dropped (as in test_pinned_manifest's layer-less variant): the layer's wheels
come from the package index, and the bench covers the layer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import obstore
import pytest

from tests.examples import SHOP
from vega_dag.config import load_config
from vega_dag.pipeline import build
from vega_dag.store.objects import ObjectStore
from vega_dag.store.remote import RemoteCache, RemoteError
from vega_dag.store.state import load_state, state_paths

VEGA_DAG = Path(sys.executable).with_name("vega-dag")


def machine(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name / "shop-api"
    shutil.copytree(SHOP, root, ignore=shutil.ignore_patterns(".vega", "__pycache__"))
    (root / "requirements.lock").unlink()
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('lock = "requirements.lock"\n', ""))
    return root


def manifest_bytes(root: Path, digest: str) -> bytes:
    return ObjectStore(root / ".vega").get(digest)


def pyc_of(root: Path, module: str) -> str:
    _, state_path, _ = state_paths(load_config(root), None)
    return load_state(state_path).modules[module].pyc


def test_a_second_machine_compiles_nothing(tmp_path, s3_env, store_url):
    first, second = machine(tmp_path, "a"), machine(tmp_path, "b")
    one = build(first, store_url=store_url, explain=True)
    assert one.modules_compiled == 68
    # The 68 modules, the closures, the tree pack (and the manifest, an object), and each of the
    # 35 routes' import-check verdict (an entry and its small object).
    assert any("uploaded 106 objects and 105 entries" in line for line in one.explain)

    two = build(second, store_url=store_url, explain=True)
    assert (two.modules_compiled, two.modules_cached, two.modules_remote) == (0, 68, 68)
    assert two.manifest == one.manifest
    assert manifest_bytes(second, two.manifest) == manifest_bytes(first, one.manifest)
    assert any("68 compiled modules fetched from the remote cache" in line for line in two.explain)
    # The first machine imported every route from its bundle alone: the second does not again.
    assert "35 routes passed the import check on another machine: not imported" in two.explain
    # Nothing new: the manifest was there already, and no entry is sent back.
    assert any("uploaded 0 objects and 0 entries" in line for line in two.explain)
    # The fetched objects are in the second machine's own store now.
    assert build(second, store_url="local").noop


def test_a_damaged_remote_object_is_refused_and_rebuilt(tmp_path, s3_env, store_url):
    first, second, third = (machine(tmp_path, n) for n in "abc")
    one = build(first, store_url=store_url)
    digest = pyc_of(first, "lib.money")
    original = ObjectStore(first / ".vega").get(digest)
    # Substituted wherever the remote holds it: its own object, and the tree's pack.
    remote = RemoteCache(store_url)
    substituted = 0
    for batch in obstore.list(remote._store, "cas/"):
        for meta in batch:
            data = bytes(obstore.get(remote._store, meta["path"]).bytes())
            if original in data:
                obstore.put(remote._store, meta["path"], data.replace(original, b"not bytecode"))
                substituted += 1
    assert substituted == 2

    two = build(second, store_url=store_url, explain=True)
    assert two.compiled == ["lib/money.py"]
    (why,) = [line for line in two.explain if line.startswith("lib/money.py:")]
    assert "damaged" in why and "refused" in why, why
    assert any(line.startswith("the tree's pack:") and "damaged" in line for line in two.explain)
    # What entered the second store is the module's real output, never the substitute.
    assert ObjectStore(second / ".vega").get(digest) != b"not bytecode"
    assert two.manifest == one.manifest
    # The machine that rebuilt it repaired the remote copy: a third compiles nothing.
    three = build(third, store_url=store_url)
    assert three.modules_compiled == 0 and three.manifest == one.manifest


def test_writes_are_once_only(s3_env, store_url):
    remote = RemoteCache(store_url)
    data, other = b"compiled bytes", b"other bytes"
    from vega_dag import _core

    digest, other_digest = _core.hash_bytes(data), _core.hash_bytes(other)
    key = _core.hash_bytes(b"an action")
    done = remote.upload({digest: data}, {key: digest})
    assert (done.objects, done.actions, done.present) == (1, 1, 0)
    # The same digest again, from a process that does not know it is there: a no-op.
    again = RemoteCache(store_url).upload({digest: data}, {key: digest})
    assert (again.objects, again.actions, again.present) == (0, 0, 2)
    # A different entry under the same key is refused: the first writer's stands.
    RemoteCache(store_url).upload({other_digest: other}, {key: other_digest})
    assert RemoteCache(store_url).lookup([key]).hits == {key: (digest, data)}
    # And a different body under an object's key.
    assert remote._put_once((f"cas/{digest.removeprefix('blake3:')}", other)) is False


def test_an_unreachable_endpoint_warns_and_builds_locally(tmp_path, s3_env, store_url, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    result = build(machine(tmp_path, "a"), store_url=store_url)
    assert result.modules_compiled == 68
    (warning,) = result.warnings
    assert f"endpoint {closed}" in warning and "unreachable" in warning, warning


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VEGA_DAG), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "VEGA_DAG_DAEMON": "0", **env},
        timeout=120,
    )


def test_the_cli_explains_remote_hits_and_refuses_wrong_credentials(tmp_path, s3_env, store_url):
    first, second = machine(tmp_path, "a"), machine(tmp_path, "b")
    out = cli("build", str(first), "--store", store_url, env=s3_env)
    assert out.returncode == 0, out.stderr
    # The store from the environment this time, as a CI runner would set it.
    out = cli("build", str(second), "--explain", env={**s3_env, "VEGA_DAG_STORE": store_url})
    assert out.returncode == 0, out.stderr
    assert "68 compiled modules fetched from the remote cache" in out.stdout
    assert "(0 modules compiled, 68 from cache" in out.stdout

    wrong = {**s3_env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    out = cli("build", str(machine(tmp_path, "c")), "--store", store_url, env=wrong)
    assert out.returncode == 1
    assert f"store {store_url}" in out.stderr and "check the credentials" in out.stderr
    assert "SignatureDoesNotMatch" in out.stderr and "Traceback" not in out.stderr


def test_wrong_credentials_fail_an_in_process_build(tmp_path, s3_env, store_url, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(RemoteError, match="InvalidAccessKeyId"):
        build(machine(tmp_path, "a"), store_url=store_url)


def test_a_bucket_that_does_not_exist_fails_naming_it(tmp_path, s3_env):
    with pytest.raises(RemoteError, match="bucket vega-no-such-bucket does not exist"):
        build(machine(tmp_path, "a"), store_url="s3://vega-no-such-bucket/x")
