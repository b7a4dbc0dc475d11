"""[tool.vega.backend] pointers, --pointers and VEGA_DAG_POINTERS: which pointer store is used."""

from __future__ import annotations

import pytest

from vega_dag.config import ConfigError, config_digest, load_config
from vega_dag.rollout.jetstream import connect_options, parse_pointers_url, pointers_url


def project(tmp_path, backend: str = ""):
    (tmp_path / "api").mkdir(exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(f"[tool.vega]\nroutes = 'api'\n{backend}")
    return load_config(tmp_path)


def test_the_flag_beats_the_environment_which_beats_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("VEGA_DAG_POINTERS", raising=False)
    assert pointers_url(project(tmp_path)) is None  # unset: the SQLite file
    config = project(tmp_path, '[tool.vega.backend]\npointers = ["nats://a:4222", "nats://b"]\n')
    assert pointers_url(config) == "nats://a:4222,nats://b"
    monkeypatch.setenv("VEGA_DAG_POINTERS", "nats://ci:4222")
    assert pointers_url(config) == "nats://ci:4222"
    assert pointers_url(config, "nats://mine:1") == "nats://mine:1"
    assert pointers_url(config, "local") is None
    monkeypatch.setenv("VEGA_DAG_POINTERS", "local")
    assert pointers_url(config) is None


def test_pointers_are_not_part_of_the_build_identity(tmp_path):
    plain = config_digest(project(tmp_path))
    shared = config_digest(project(tmp_path, '[tool.vega.backend]\npointers = "nats://h:1"\n'))
    assert shared == plain


def test_urls_servers_and_namespace():
    target = parse_pointers_url("nats://u:p@a:4000/shop, tls://b/shop")
    assert target.servers == ["nats://u:p@a:4000", "tls://b:4222"]
    assert target.namespace == "shop"
    assert target.where == "nats://a:4000,tls://b:4222"  # no credentials in messages
    assert parse_pointers_url(["nats://a"]).namespace == "vega"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http://a:4222", "expected"),
        ("nats://", "expected"),
        ("nats://a/x.y", "namespace 'x.y'"),
        ("nats://a/x,nats://b/y", "different namespaces"),
        ("nats://a:99999", "not a URL"),
    ],
)
def test_a_bad_pointers_url_names_the_file_and_key(tmp_path, value, why):
    with pytest.raises(ConfigError) as err:
        project(tmp_path, f'[tool.vega.backend]\npointers = "{value}"\n')
    message = str(err.value)
    assert str(tmp_path / "pyproject.toml") in message
    assert "[tool.vega.backend] pointers" in message and why in message


def test_credentials_and_tls_by_the_nats_conventions(tmp_path, monkeypatch):
    for name in ("VEGA_DAG_NATS_CREDS", "NATS_CREDS", "VEGA_DAG_NATS_CA", "NATS_CA"):
        monkeypatch.delenv(name, raising=False)
    target = parse_pointers_url("nats://a")
    assert connect_options(target) == {}
    monkeypatch.setenv("NATS_CREDS", str(tmp_path / "missing.creds"))
    with pytest.raises(Exception, match=r"missing\.creds does not exist"):
        connect_options(target)
    (tmp_path / "u.creds").write_text("x")
    monkeypatch.setenv("VEGA_DAG_NATS_CREDS", str(tmp_path / "u.creds"))
    assert connect_options(target) == {"user_credentials": str(tmp_path / "u.creds")}
    assert "tls" in connect_options(parse_pointers_url("tls://a"))


def test_replicas_for_a_cluster_in_the_url():
    target = parse_pointers_url("nats://a,nats://b,nats://c?replicas=3")
    assert target.servers == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
    assert target.replicas == 3
    assert parse_pointers_url("nats://a/shop").replicas == 1
    for bad, why in [
        ("nats://a?replicas=9", "expected 1 to 5"),
        ("nats://a?replicas=x", "expected 1 to 5"),
        ("nats://a?domain=x", "only replicas=N"),
        ("nats://a?replicas=1,nats://b?replicas=3", "different replicas"),
    ]:
        with pytest.raises(Exception, match=why):
            parse_pointers_url(bad)


def test_a_leaf_node_url_names_its_domain_and_the_hubs(monkeypatch):
    from vega_dag.rollout.jetstream import LeafTarget, leaf_from_env, parse_leaf_url

    assert parse_leaf_url("nats://127.0.0.1?domain=r1") == LeafTarget(
        "nats://127.0.0.1:4222", "r1", "hub"
    )
    assert parse_leaf_url("nats://l:5?domain=r1&hub=core").hub == "core"
    for bad in ("nats://l", "nats://l?domain=a.b", "http://l?domain=r1", "nats://l?domain=r&x=1"):
        with pytest.raises(Exception, match="leaf: expected"):
            parse_leaf_url(bad)
    monkeypatch.delenv("VEGA_DAG_POINTERS_LEAF", raising=False)
    assert leaf_from_env() is None
    monkeypatch.setenv("VEGA_DAG_POINTERS_LEAF", "nats://127.0.0.1:4222?domain=r2")
    assert leaf_from_env() == LeafTarget("nats://127.0.0.1:4222", "r2", "hub")
