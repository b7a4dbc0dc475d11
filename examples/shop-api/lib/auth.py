"""Stateless bearer tokens: ``<user_id>.<expiry>.<hmac>``.

Demo-grade only: the secret is a constant in ``lib.config``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from lib import clock, db
from lib.config import get_settings
from lib.http import HTTPError, Request, bearer_token

if TYPE_CHECKING:
    from models.user import User

DEMO_PASSWORD = "correct horse battery staple"


def _sign(payload: str) -> str:
    secret = get_settings().token_secret
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:32]


def issue_token(user_id: int) -> str:
    expires = int(clock.now().timestamp()) + get_settings().token_ttl_s
    payload = f"{user_id}.{expires}"
    return f"{payload}.{_sign(payload)}"


def verify_token(token: str) -> int | None:
    parts = token.split(".")
    if len(parts) != 3 or not all(part for part in parts):
        return None
    user_id, expires, signature = parts
    if not hmac.compare_digest(signature, _sign(f"{user_id}.{expires}")):
        return None
    if not expires.isdigit() or int(expires) < int(clock.now().timestamp()):
        return None
    return int(user_id) if user_id.isdigit() else None


def check_password(email: str, password: str) -> User | None:
    database = db.get_db()
    user = next((u for u in database.users if u.email == email.lower()), None)
    if user is None or not hmac.compare_digest(password, DEMO_PASSWORD):
        return None
    return user


def current_user(request: Request) -> User | None:
    token = bearer_token(request)
    if token is None or token in _revoked:
        return None
    user_id = verify_token(token)
    return db.get_db().users.get(user_id) if user_id is not None else None


def require_user(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise HTTPError(401, "authentication required")
    return user


def require_admin(request: Request) -> User:
    user = require_user(request)
    if not get_settings().is_admin(user):
        raise HTTPError(403, "admin role required")
    return user


_revoked: set[str] = set()


def revoke(token: str) -> None:
    _revoked.add(token)
