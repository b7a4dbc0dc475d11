"""Shipping quotes from the carrier integrations."""

from __future__ import annotations

from integrations.carriers import dhl, ups
from integrations.carriers.base import Carrier

CARRIERS: tuple[Carrier, ...] = (dhl.CARRIER, ups.CARRIER)


def quotes(weight_g: int, country: str) -> list[dict[str, object]]:
    result = []
    for carrier in CARRIERS:
        cents = carrier.quote(weight_g, country)
        if cents is not None:
            result.append({"carrier": carrier.name, "cents": cents, "days": carrier.transit_days(country)})
    return sorted(result, key=lambda q: (q["cents"], q["carrier"]))


def cheapest_quote(weight_g: int, country: str) -> dict[str, object]:
    available = quotes(weight_g, country)
    if not available:
        return {"carrier": None, "cents": 0, "days": None}
    return available[0]


def carriers() -> list[dict[str, object]]:
    return [{"name": c.name, "countries": sorted(c.countries)} for c in CARRIERS]
