"""Users and their addresses.

``models.user`` and ``models.order`` import each other: a user knows how to
summarise its orders, an order knows how to find its customer. Both only
touch the other module inside functions, so the cycle resolves at import
time.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from . import order
from .base import Model


@dataclass
class Address(Model):
    id: int
    user_id: int
    line1: str
    city: str
    country: str
    default: bool = False


@dataclass
class User(Model):
    id: int
    email: str
    name: str
    role: str = "customer"
    country: str = "DE"
    created_at: _dt.datetime | None = None
    password_hint: str = field(default="", repr=False)

    hidden_fields: ClassVar[frozenset[str]] = frozenset({"password_hint"})

    @property
    def display_name(self) -> str:
        first, _, last = self.name.partition(" ")
        return f"{first} {last[:1]}." if last else first

    def order_summary(self, orders: Iterable[order.Order]) -> dict[str, object]:
        mine = [o for o in orders if o.user_id == self.id]
        open_statuses = {order.OrderStatus.PENDING, order.OrderStatus.PAID, order.OrderStatus.SHIPPED}
        return {
            "count": len(mine),
            "open": sum(1 for o in mine if o.status in open_statuses),
            "last_order_id": max((o.id for o in mine), default=None),
        }

    def public(self) -> dict[str, object]:
        return {"id": self.id, "name": self.display_name, "country": self.country}
