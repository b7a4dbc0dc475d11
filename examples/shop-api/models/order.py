"""Orders and order lines (see ``models.user`` for the import cycle)."""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from lib.money import Money

from . import user
from .base import Model


class OrderStatus(str, enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.REFUNDED)


ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.SHIPPED, OrderStatus.REFUNDED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset({OrderStatus.REFUNDED}),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Money

    @property
    def subtotal(self) -> Money:
        return self.unit_price.times(self.quantity)

    def to_dict(self) -> dict[str, object]:
        return {"sku": self.sku, "quantity": self.quantity, "unit_price": self.unit_price,
                "subtotal": self.subtotal}


@dataclass
class Order(Model):
    id: int
    user_id: int
    status: OrderStatus
    created_at: _dt.datetime
    lines: list[OrderLine] = field(default_factory=list)
    shipping: Money = field(default_factory=Money.zero)
    discount: Money = field(default_factory=Money.zero)
    coupon: str | None = None

    def subtotal(self) -> Money:
        result = Money.zero(self.shipping.currency)
        for line in self.lines:
            result = result + line.subtotal
        return result

    def total(self) -> Money:
        return self.subtotal() + self.shipping - self.discount

    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    def can_transition(self, target: OrderStatus) -> bool:
        return target in ALLOWED_TRANSITIONS[self.status]

    def customer(self, users: Mapping[int, user.User]) -> user.User | None:
        return users.get(self.user_id)

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["subtotal"] = self.subtotal()
        data["total"] = self.total()
        data["item_count"] = self.item_count()
        return data
