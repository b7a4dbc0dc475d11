"""Stock levels per warehouse."""

from __future__ import annotations

from lib import db
from lib.fixtures import WAREHOUSES

LOW_STOCK = 30


def level(warehouse: str, sku: str) -> int | None:
    return db.get_db().stock.get((warehouse, sku))


def availability(sku: str) -> dict[str, int]:
    stock = db.get_db().stock
    return {wh: stock.get((wh, sku), 0) for wh in WAREHOUSES}


def overview() -> list[dict[str, object]]:
    database = db.get_db()
    rows = []
    for product in database.products:
        per_wh = availability(product.sku)
        total = sum(per_wh.values())
        rows.append({"sku": product.sku, "total": total, "warehouses": per_wh, "low": total < LOW_STOCK})
    return rows


def reserve(sku: str, quantity: int) -> str | None:
    """Take ``quantity`` from the warehouse with the most stock; return it."""
    stock = db.get_db().stock
    best = max(WAREHOUSES, key=lambda wh: (stock.get((wh, sku), 0), wh))
    if stock.get((best, sku), 0) < quantity:
        return None
    stock[(best, sku)] -= quantity
    return best
