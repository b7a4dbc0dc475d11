"""Sales reporting. Heavy imports are deferred to the functions that use them."""

from __future__ import annotations

from collections import defaultdict

from lib import clock, db
from lib.money import Money
from models import OrderStatus

COUNTED = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def daily_sales(days: int = 14) -> list[dict[str, object]]:
    since = clock.days_ago(days)
    buckets: dict[str, list[int]] = defaultdict(list)
    for order in db.get_db().orders:
        if order.status in COUNTED and order.created_at >= since:
            buckets[clock.day_key(order.created_at)].append(order.total().cents)
    return [
        {"day": day, "orders": len(totals), "revenue_cents": sum(totals)}
        for day, totals in sorted(buckets.items())
    ]


def by_category() -> dict[str, Money]:
    database = db.get_db()
    result: dict[str, Money] = {}
    for order in database.orders:
        if order.status not in COUNTED:
            continue
        for line in order.lines:
            product = database.products.get(line.sku)
            category = product.category if product else "unknown"
            result[category] = result.get(category, Money.zero()) + line.subtotal
    return dict(sorted(result.items()))


def order_value_stats() -> dict[str, float]:
    import statistics  # only the reporting routes pay for this import

    values = [o.total().cents / 100 for o in db.get_db().orders if o.status in COUNTED]
    if len(values) < 2:
        return {"mean": values[0] if values else 0.0, "median": values[0] if values else 0.0, "stdev": 0.0}
    return {
        "mean": round(statistics.fmean(values), 2),
        "median": round(statistics.median(values), 2),
        "stdev": round(statistics.stdev(values), 2),
    }


def top_products(limit: int = 5) -> list[dict[str, object]]:
    from services import catalog  # deferred: catalog is only needed here

    sold: dict[str, int] = defaultdict(int)
    for order in db.get_db().orders:
        if order.status in COUNTED:
            for line in order.lines:
                sold[line.sku] += line.quantity
    ranked = sorted(sold.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        {"sku": sku, "sold": count, "name": p.name if (p := catalog.get_product(sku)) else None}
        for sku, count in ranked
    ]
