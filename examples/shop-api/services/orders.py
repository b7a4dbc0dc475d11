"""Order queries and checkout.

``services.orders`` and ``services.payments`` import each other (checkout
creates a payment; a refund updates the order); both use the other module's
attributes only at call time.
"""

from __future__ import annotations

import services.payments
from lib import clock, db
from lib.http import HTTPError
from lib.money import Money
from models import Cart, Order, OrderLine, OrderStatus

from . import inventory, pricing


def list_orders(user_id: int | None = None, status: str | None = None) -> list[Order]:
    orders = db.get_db().orders.all()
    if user_id is not None:
        orders = [o for o in orders if o.user_id == user_id]
    if status:
        orders = [o for o in orders if o.status.value == status]
    return sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)


def get_order(order_id: int) -> Order | None:
    return db.get_db().orders.get(order_id)


def summary() -> dict[str, object]:
    orders = db.get_db().orders.all()
    by_status: dict[str, int] = {}
    for order in orders:
        by_status[order.status.value] = by_status.get(order.status.value, 0) + 1
    revenue = sum((o.total() for o in orders if o.status is not OrderStatus.CANCELLED), Money.zero())
    return {"count": len(orders), "by_status": dict(sorted(by_status.items())), "revenue": revenue}


def checkout(cart: Cart, user_id: int, country: str) -> Order:
    if not cart.items:
        raise HTTPError(409, "cart is empty")
    priced = pricing.price_cart(cart, country)
    database = db.get_db()
    lines = []
    for item in cart.items:
        if inventory.reserve(item.sku, item.quantity) is None:
            raise HTTPError(409, f"{item.sku} is out of stock")
        lines.append(OrderLine(item.sku, item.quantity, database.products.require(item.sku).price))
    order = Order(
        id=database.next_id(database.orders),
        user_id=user_id,
        status=OrderStatus.PENDING,
        created_at=clock.now(),
        lines=lines,
        shipping=priced["shipping"],  # type: ignore[arg-type]
        discount=priced["discount"],  # type: ignore[arg-type]
        coupon=cart.coupon,
    )
    database.orders.insert(order)
    services.payments.authorize(order)
    cart.items.clear()
    cart.coupon = None
    return order


def transition(order: Order, target: OrderStatus) -> Order:
    if not order.can_transition(target):
        raise HTTPError(409, f"cannot move order from {order.status.value} to {target.value}")
    order.status = target
    return order
