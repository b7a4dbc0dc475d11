"""Which pointer store a command uses, told without importing the NATS backend.

Apart from ``jetstream`` (which re-exports these names) because that module
imports asyncio, threading and urllib at its top: a rollback on the SQLite
file needs only the answer "none" (with pluggy, 69 of the 206 modules a
rollback imported).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

#: The environment variable that overrides ``[tool.vega.backend] pointers``.
POINTERS_ENV = "VEGA_DAG_POINTERS"
#: A value of ``--pointers``/VEGA_DAG_POINTERS meaning the SQLite default.
LOCAL = "local"


def pointers_url(config: ProjectConfig, override: str | None = None) -> str | None:
    """The pointer store a command uses: ``--pointers``, else VEGA_DAG_POINTERS, else the
    config's; None is the SQLite file."""
    for value in (override, os.environ.get(POINTERS_ENV)):
        if value is not None and value.strip():
            return None if value.strip() == LOCAL else value.strip()
    configured = config.vega.backend.pointers
    if isinstance(configured, list):
        return ",".join(configured)
    return configured
