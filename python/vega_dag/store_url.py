"""Which remote store a command uses, and whether its URL is one, told without the S3 client.

Apart from ``store.remote`` (which re-exports these names) because importing
anything under ``vega_dag.store`` imports the object store and the action
cache first: a command that only checks its configuration (a rollback on
region agents loads the config, whose check parses this URL) needs none of it.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from vega_dag.errors import VegaError

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

#: ``s3://BUCKET`` or ``s3://BUCKET/PREFIX`` (S3's bucket naming rules).
_URL = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?")
#: The environment variable that overrides ``[tool.vega.backend] store``.
STORE_ENV = "VEGA_DAG_STORE"
#: A value of ``--store``/VEGA_DAG_STORE meaning the embedded default (no remote).
LOCAL = "local"


class RemoteConfigError(VegaError):
    """A store URL that cannot be used (``reason`` without the URL)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"store {url}: {reason}")
        self.url = url
        self.reason = reason


def parse_store_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://BUCKET/PREFIX``; the prefix without its slashes."""
    m = _URL.fullmatch(url.strip())
    if m is None:
        raise RemoteConfigError(
            url, 'expected "s3://BUCKET/PREFIX" (a lowercase S3 bucket name, then a key prefix)'
        )
    return m[1], (m[2] or "").strip("/")


def store_url(config: ProjectConfig, override: str | None = None) -> str | None:
    """The remote store a build uses: ``--store``, else VEGA_DAG_STORE, else the config's."""
    for value in (override, os.environ.get(STORE_ENV)):
        if value is not None and value.strip():
            return None if value.strip() == LOCAL else value.strip()
    return config.vega.backend.store
