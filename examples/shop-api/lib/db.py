"""An in-memory database with just enough of a table API for the routes.

There is no network and no real database: tables are built from
``lib.fixtures`` on first use, once per process.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

import models
from models.cart import Cart, CartItem
from models.order import Order, OrderLine, OrderStatus
from models.payment import Payment, PaymentStatus

from . import clock, fixtures
from .money import Money

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class NotFound(LookupError):
    pass


class Table(Generic[K, T]):
    def __init__(self, name: str, key: Callable[[T], K]) -> None:
        self.name = name
        self._key = key
        self._rows: dict[K, T] = {}

    def insert(self, row: T) -> T:
        self._rows[self._key(row)] = row
        return row

    def get(self, key: K) -> T | None:
        return self._rows.get(key)

    def require(self, key: K) -> T:
        row = self._rows.get(key)
        if row is None:
            raise NotFound(f"{self.name}: {key!r}")
        return row

    def delete(self, key: K) -> bool:
        return self._rows.pop(key, None) is not None

    def all(self) -> list[T]:
        return [self._rows[k] for k in sorted(self._rows, key=repr)]

    def filter(self, predicate: Callable[[T], bool]) -> list[T]:
        return [row for row in self.all() if predicate(row)]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[T]:
        return iter(self.all())


class Database:
    def __init__(self) -> None:
        self.users: Table[int, models.User] = Table("users", lambda u: u.id)
        self.addresses: Table[int, models.Address] = Table("addresses", lambda a: a.id)
        self.categories: Table[str, models.Category] = Table("categories", lambda c: c.slug)
        self.products: Table[str, models.Product] = Table("products", lambda p: p.sku)
        self.orders: Table[int, Order] = Table("orders", lambda o: o.id)
        self.payments: Table[int, Payment] = Table("payments", lambda p: p.id)
        self.reviews: Table[int, models.Review] = Table("reviews", lambda r: r.id)
        self.carts: Table[str, Cart] = Table("carts", lambda c: c.id)
        self.stock: dict[tuple[str, str], int] = {}
        self.sessions: dict[str, int] = {}

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self.users),
            "products": len(self.products),
            "orders": len(self.orders),
            "payments": len(self.payments),
            "reviews": len(self.reviews),
            "carts": len(self.carts),
        }

    def next_id(self, table: Table[int, T]) -> int:
        keys = [k for k in table._rows]
        return (max(keys) if keys else 0) + 1


def _seed(database: Database) -> None:
    for row in fixtures.USERS:
        database.users.insert(
            models.User(row.id, row.email, row.name, row.role, row.country, clock.days_ago(400 - 17 * row.id))
        )
    for raw in fixtures.addresses():
        database.addresses.insert(models.Address(**raw))  # type: ignore[arg-type]
    for slug, title in fixtures.CATEGORIES:
        database.categories.insert(models.Category(slug, title))
    for p in fixtures.PRODUCTS:
        database.products.insert(models.Product(p.sku, p.name, p.category, Money(p.price_cents), p.weight_g))
    for raw in fixtures.orders():
        lines = [OrderLine(ln["sku"], ln["quantity"], Money(ln["unit_cents"])) for ln in raw["lines"]]  # type: ignore[union-attr,index]
        order = Order(
            id=raw["id"],  # type: ignore[arg-type]
            user_id=raw["user_id"],  # type: ignore[arg-type]
            status=OrderStatus(raw["status"]),
            created_at=raw["created_at"],  # type: ignore[arg-type]
            lines=lines,
            shipping=Money(raw["shipping_cents"]),  # type: ignore[arg-type]
        )
        database.orders.insert(order)
        if order.status not in (OrderStatus.PENDING, OrderStatus.CANCELLED):
            status = PaymentStatus.REFUNDED if order.status is OrderStatus.REFUNDED else PaymentStatus.CAPTURED
            database.payments.insert(
                Payment(id=5000 + order.id - 1000, order_id=order.id, amount=order.total(), status=status,
                        created_at=order.created_at)
            )
    for raw in fixtures.reviews():
        database.reviews.insert(models.Review(**raw))  # type: ignore[arg-type]
    database.stock.update(fixtures.stock())
    demo = Cart(id="demo", user_id=3, items=[CartItem(1, "COF-101", 2), CartItem(2, "GEA-304", 1)])
    database.carts.insert(demo)


_database: Database | None = None


def get_db() -> Database:
    global _database
    if _database is None:
        _database = Database()
        _seed(_database)
    return _database


def reset() -> None:
    """Forget all in-memory writes (used by tests)."""
    global _database
    _database = None
