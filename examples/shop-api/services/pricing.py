"""Cart pricing: line totals, coupons, shipping, VAT."""

from __future__ import annotations

from lib import db, fixtures
from lib.config import get_settings
from lib.http import HTTPError
from lib.money import Money
from models import Cart

from . import shipping


def coupon_rule(code: str | None) -> dict[str, int | str] | None:
    if not code:
        return None
    return fixtures.COUPONS.get(code.strip().upper())


def price_cart(cart: Cart, country: str = "DE") -> dict[str, object]:
    database = db.get_db()
    settings = get_settings()
    lines = []
    subtotal = Money.zero()
    weight = 0
    for item in cart.items:
        product = database.products.get(item.sku)
        if product is None:
            raise HTTPError(409, f"product {item.sku} is no longer available")
        line_total = product.price.times(item.quantity)
        subtotal = subtotal + line_total
        weight += product.weight_g * item.quantity
        lines.append({"item_id": item.id, "sku": item.sku, "quantity": item.quantity, "total": line_total})

    quote = shipping.cheapest_quote(weight, country)
    shipping_cost = Money(quote["cents"])  # type: ignore[arg-type]
    if subtotal.cents >= settings.free_shipping_over_cents:
        shipping_cost = Money.zero()

    discount = Money.zero()
    rule = coupon_rule(cart.coupon)
    if rule and subtotal.cents >= int(rule["min_cents"]):
        if rule["kind"] == "percent":
            discount = subtotal.percent(int(rule["value"]))
        elif rule["kind"] == "fixed":
            discount = Money(min(int(rule["value"]), subtotal.cents))
        elif rule["kind"] == "shipping":
            shipping_cost = Money.zero()

    net = subtotal - discount + shipping_cost
    vat = net.percent(settings.vat_basis_points(country))
    return {
        "lines": lines,
        "subtotal": subtotal,
        "discount": discount,
        "shipping": shipping_cost,
        "carrier": quote["carrier"],
        "vat": vat,
        "total": net + vat,
        "weight_g": weight,
        "coupon": cart.coupon if rule else None,
    }
