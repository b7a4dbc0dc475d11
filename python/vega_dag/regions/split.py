"""A region's traffic split: which of two warm deployments answers a request.

A weighted pointer (``rollout.pointers``) names a deployment, its ``weight``
(percent of the region's requests) and the ``baseline`` that answers the
rest. The unit of the split is the request, as in Cloudflare's gradual
deployments and Argo Rollouts behind a traffic router, not the connection:
a kept-alive client sees the configured share too. Each request is decided
once, where its head is read: by the front for a connection's first request,
by the worker holding the connection for each later one (a request for the
other side goes back to the front with the decision, which hands it on).

- A request naming one of the two deployments in ``x-vega-deployment`` goes
  there (a gate's probes, a comparison against the baseline).
- With the sticky header or cookie configured and present, its value decides:
  ``bucket(value) < weight`` (a stable hash into 0..99). Raising the weight
  keeps every sticky client that was on the new deployment there.
- Any other request draws at random with probability ``weight`` / 100.

Only a split reads the whole request head; an unweighted pointer routes on
the first request line, as before.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

#: A request for a named deployment (its response carries the same header).
PIN_HEADER = b"x-vega-deployment"

_random = random.random


def bucket(value: bytes) -> int:
    """A stable 0..99 for a sticky value, the same in every process (``hash()`` is not)."""
    return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "big") % 100


def head_complete(data: bytes | bytearray) -> bool:
    return b"\r\n\r\n" in data or b"\n\n" in data


def header_value(head: bytes, name: bytes) -> bytes | None:
    """The first ``name`` header's value in a request ``head`` (``name`` lower-case)."""
    end = head.find(b"\r\n\r\n")
    for line in head[: end if end >= 0 else len(head)].split(b"\n")[1:]:
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == name:
            return value.strip()
    return None


def cookie_value(head: bytes, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in a request ``head``'s ``cookie`` header."""
    cookies = header_value(head, b"cookie")
    if cookies is None:
        return None
    for part in cookies.split(b";"):
        key, eq, value = part.partition(b"=")
        if eq and key.strip() == name:
            return value.strip().strip(b'"')
    return None


@dataclass(frozen=True)
class Split:
    """``deployment`` answers ``weight`` percent of requests, ``baseline`` the rest."""

    weight: int
    deployment: str
    manifest: str
    baseline: str
    baseline_manifest: str
    #: the sticky header (lower-case) and cookie names, or None
    header: bytes | None = None
    cookie: bytes | None = None

    def to_primary(self, head: bytes) -> bool:
        """Whether the request whose head ``head`` is goes to ``deployment`` (else ``baseline``)."""
        pinned = header_value(head, PIN_HEADER)
        if pinned is not None:
            if pinned == self.deployment.encode():
                return True
            if pinned == self.baseline.encode():
                return False
        for value in (
            header_value(head, self.header) if self.header else None,
            cookie_value(head, self.cookie) if self.cookie else None,
        ):
            if value:
                return bucket(value) < self.weight
        return _random() * 100 < self.weight

    def message(self, primary: bool) -> dict:
        """What the front tells the worker of either side (``op: split``)."""
        return {
            "op": "split",
            "weight": self.weight,
            "primary": primary,
            "deployment": self.deployment,
            "baseline": self.baseline,
            "header": self.header.decode("latin-1") if self.header else None,
            "cookie": self.cookie.decode("latin-1") if self.cookie else None,
        }

    @classmethod
    def from_message(cls, message: dict) -> Split:
        """The worker's copy (manifests are the front's business)."""
        header, cookie = message.get("header"), message.get("cookie")
        return cls(
            weight=int(message["weight"]),
            deployment=str(message["deployment"]),
            manifest="",
            baseline=str(message["baseline"]),
            baseline_manifest="",
            header=header.lower().encode("latin-1") if header else None,
            cookie=cookie.encode("latin-1") if cookie else None,
        )
