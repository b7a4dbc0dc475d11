"""[tool.vega.backend] store, --store and VEGA_DAG_STORE: which store a build shares."""

from __future__ import annotations

import pytest

from vega_dag.config import ConfigError, config_digest, load_config
from vega_dag.store.remote import parse_store_url, store_url


def project(tmp_path, backend: str = ""):
    (tmp_path / "api").mkdir(exist_ok=True)
    (tmp_path / "pyproject.toml").write_text(f"[tool.vega]\nroutes = 'api'\n{backend}")
    return load_config(tmp_path)


def test_the_flag_beats_the_environment_which_beats_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("VEGA_DAG_STORE", raising=False)
    config = project(tmp_path, '[tool.vega.backend]\nstore = "s3://team-cache/shop"\n')
    assert store_url(config) == "s3://team-cache/shop"
    monkeypatch.setenv("VEGA_DAG_STORE", "s3://ci-cache/x")
    assert store_url(config) == "s3://ci-cache/x"
    assert store_url(config, "s3://mine/y") == "s3://mine/y"
    assert store_url(config, "local") is None
    monkeypatch.setenv("VEGA_DAG_STORE", "local")
    assert store_url(config) is None


def test_unset_is_the_embedded_default(tmp_path, monkeypatch):
    monkeypatch.delenv("VEGA_DAG_STORE", raising=False)
    assert store_url(project(tmp_path)) is None


def test_the_backend_is_not_part_of_the_build_identity(tmp_path):
    plain = config_digest(project(tmp_path))
    shared = config_digest(project(tmp_path, '[tool.vega.backend]\nstore = "s3://b-1/p"\n'))
    assert shared == plain


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://team-cache", "team-cache", ""), ("s3://team-cache/a/b/", "team-cache", "a/b")],
)
def test_store_urls(url, bucket, prefix):
    assert parse_store_url(url) == (bucket, prefix)


@pytest.mark.parametrize(
    "url", ["https://team-cache/x", "s3://Team_Cache/x", "team-cache", "s3://"]
)
def test_a_bad_store_url_names_the_file_and_key(tmp_path, url):
    with pytest.raises(ConfigError) as err:
        project(tmp_path, f'[tool.vega.backend]\nstore = "{url}"\n')
    message = str(err.value)
    assert str(tmp_path / "pyproject.toml") in message
    assert "[tool.vega.backend] store" in message and "s3://BUCKET/PREFIX" in message
