"""What a region agent and the deployer agree on in NATS: the status bucket, its keys, the
prefetch subject.

Apart from ``regions.agent`` (which re-exports these names) because that
module is the agent itself, a region front: the deployer's side
(``regions.agents``) would import the whole serving stack (uvicorn, the
region's front, its loader) only to learn a bucket's name.
"""

from __future__ import annotations

from typing import Any

#: The bucket (``<ns>-agents``) keeps one value per key.
AGENTS_BUCKET = "agents"


def agents_bucket(namespace: str) -> str:
    return f"{namespace}-{AGENTS_BUCKET}"


def status_key(region: str) -> str:
    return f"status.{region}"


def prefetch_subject(namespace: str, region: str) -> str:
    return f"{namespace}.agent.{region}.prefetch"


async def open_agents_kv(js: Any, namespace: str, replicas: int = 1) -> Any:
    """The agents' status bucket, created when missing (one value per key, ``replicas`` copies)."""
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(agents_bucket(namespace))
    except BucketNotFoundError:
        return await js.create_key_value(
            bucket=agents_bucket(namespace), history=1, replicas=replicas
        )
