"""A deployment's blobs through S3 (store.ship): uploaded leaves first, fetched verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.helpers import Backends, agent_project
from tests.rollout.helpers import vega_json
from vega_dag.config import load_config
from vega_dag.store.objects import ObjectStore
from vega_dag.store.remote import RemoteCache
from vega_dag.store.ship import ShipError, deployment_layers, fetch_deployment, upload_deployment


@pytest.fixture
def built(tmp_path: Path, backends: Backends) -> tuple[ObjectStore, str]:
    project = agent_project(tmp_path / "proj", backends)
    manifest = vega_json("build", str(project))["manifest"]
    return ObjectStore(load_config(project).store_dir), manifest


def test_upload_then_fetch_into_an_empty_store(
    tmp_path: Path, backends: Backends, built: tuple[ObjectStore, str]
) -> None:
    from vega_dag.regions.worker import prepare

    store, manifest = built
    remote = RemoteCache(backends.store)
    layers = deployment_layers(store, manifest)
    assert layers[2] == [manifest] and layers[1] and layers[0]
    first = upload_deployment(remote, store, manifest)
    everything = sum(len(layer) for layer in layers)
    assert first.objects + first.present == everything
    again = upload_deployment(RemoteCache(backends.store), store, manifest)
    assert again.objects == 0 and again.present == everything

    empty = ObjectStore(tmp_path / "agent" / "store")
    fetched = fetch_deployment(remote, empty, manifest)
    assert fetched.objects == everything
    # What a region verifies before it loads: every bundle from its tree, every member.
    prepare(tmp_path / "agent" / "store", tmp_path / "agent" / "fleet", manifest)
    assert fetch_deployment(remote, ObjectStore(empty.root), manifest).objects == 0


def test_a_damaged_object_is_refused_named_and_kept_out(
    tmp_path: Path, backends: Backends, built: tuple[ObjectStore, str]
) -> None:
    import obstore

    store, manifest = built
    remote = RemoteCache(backends.store)
    upload_deployment(remote, store, manifest)
    victim = deployment_layers(store, manifest)[0][0]
    hexdigest = victim.removeprefix("blake3:")
    obstore.put(remote._store, f"cas/{hexdigest}", b"substituted")

    empty = ObjectStore(tmp_path / "agent" / "store")
    with pytest.raises(ShipError) as caught:
        fetch_deployment(RemoteCache(backends.store), empty, manifest)
    assert f"cas/{hexdigest}" in str(caught.value) and "damaged" in str(caught.value)
    assert not ObjectStore(empty.root).has(victim)
    assert not ObjectStore(empty.root).has(manifest)  # nothing of the deployment entered


def test_a_missing_object_is_named(tmp_path: Path, backends: Backends, built) -> None:
    _, manifest = built
    with pytest.raises(ShipError) as caught:
        fetch_deployment(RemoteCache(backends.store), ObjectStore(tmp_path / "s"), manifest)
    # Nothing of the deployment but what the build shared is there: the first one missing, named.
    assert "missing from the store" in str(caught.value)
    assert f"{backends.store} " in str(caught.value) and ": cas/" in str(caught.value)
