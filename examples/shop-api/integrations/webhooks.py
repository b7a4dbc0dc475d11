"""Signature checks for inbound payment-provider webhooks."""

from __future__ import annotations

import hashlib
import hmac

WEBHOOK_SECRET = b"whsec_demo_0123456789"


def sign(body: bytes, secret: bytes = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: bytes = WEBHOOK_SECRET) -> bool:
    return signature is not None and hmac.compare_digest(sign(body, secret), signature)
