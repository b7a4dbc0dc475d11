"""Shopping carts. Prices are resolved at checkout, not stored in the cart."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Model


@dataclass
class CartItem(Model):
    id: int
    sku: str
    quantity: int


@dataclass
class Cart(Model):
    id: str
    user_id: int | None = None
    items: list[CartItem] = field(default_factory=list)
    coupon: str | None = None

    def find(self, item_id: int) -> CartItem | None:
        return next((item for item in self.items if item.id == item_id), None)

    def add(self, sku: str, quantity: int) -> CartItem:
        for item in self.items:
            if item.sku == sku:
                item.quantity += quantity
                return item
        item = CartItem(max((i.id for i in self.items), default=0) + 1, sku, quantity)
        self.items.append(item)
        return item

    def remove(self, item_id: int) -> bool:
        before = len(self.items)
        self.items = [item for item in self.items if item.id != item_id]
        return len(self.items) != before
