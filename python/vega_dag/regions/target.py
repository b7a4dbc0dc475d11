"""Which built-in region target a project deploys to: local region processes or region agents.

``[tool.vega.backend] regions`` (or ``VEGA_DAG_REGIONS``): ``"local"``, the
default, is ``regions.fleet.LocalFleet``; ``"agents"`` is
``regions.agents.AgentFleet``, region agents on other hosts reached through
the shared backends. The plugin manager's built-in hook and the rollback's
plugin-free fast path both ask ``builtin_target``, so they cannot disagree.
Kept apart from ``regions.agents`` because that imports asyncio, which the
rollback's start-up does not pay for.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

REGIONS_ENV = "VEGA_DAG_REGIONS"
TARGETS = ("local", "agents")


def regions_setting(config: ProjectConfig) -> str:
    """Which region target the project uses: VEGA_DAG_REGIONS, else the config's."""
    value = (os.environ.get(REGIONS_ENV) or "").strip() or config.vega.backend.regions
    if value not in TARGETS:
        from vega_dag.errors import VegaError

        raise VegaError(
            f"regions {value!r}: expected one of {', '.join(TARGETS)} "
            f"({REGIONS_ENV} or [tool.vega.backend] regions)"
        )
    return value


def builtin_target(config: ProjectConfig) -> Any:
    """The built-in region target ``config`` asks for (a ``hookspecs.RegionTarget``)."""
    if regions_setting(config) == "agents":
        from vega_dag.regions.agents import AgentFleet

        return AgentFleet(config)
    from vega_dag.regions.fleet import LocalFleet

    return LocalFleet(config)
