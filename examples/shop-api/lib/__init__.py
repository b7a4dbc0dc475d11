"""Shared helpers for the shop API: storage, auth, HTTP plumbing and money.

Route modules import from here, e.g. ``from lib import db, pagination``.
"""

__all__ = [
    "auth",
    "clock",
    "config",
    "db",
    "fixtures",
    "http",
    "ids",
    "money",
    "pagination",
    "serialize",
    "validation",
]
