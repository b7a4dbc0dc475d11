"""Deterministic seed data for the in-memory database.

Everything is generated from fixed seeds, so two processes (or two regions)
serve byte-identical responses.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from . import clock


class UserRow(NamedTuple):
    id: int
    email: str
    name: str
    role: str
    country: str


class ProductRow(NamedTuple):
    sku: str
    name: str
    category: str
    price_cents: int
    weight_g: int


USERS: tuple[UserRow, ...] = (
    UserRow(1, "ada@example.com", "Ada Lovelace", "admin", "GB"),
    UserRow(2, "grace@example.com", "Grace Hopper", "support", "US"),
    UserRow(3, "alan@example.com", "Alan Turing", "customer", "GB"),
    UserRow(4, "edsger@example.com", "Edsger Dijkstra", "customer", "NL"),
    UserRow(5, "barbara@example.com", "Barbara Liskov", "customer", "US"),
    UserRow(6, "donald@example.com", "Donald Knuth", "customer", "US"),
    UserRow(7, "margaret@example.com", "Margaret Hamilton", "customer", "US"),
    UserRow(8, "niklaus@example.com", "Niklaus Wirth", "customer", "DE"),
    UserRow(9, "frances@example.com", "Frances Allen", "customer", "US"),
    UserRow(10, "konrad@example.com", "Konrad Zuse", "customer", "DE"),
    UserRow(11, "sophie@example.com", "Sophie Wilson", "customer", "GB"),
    UserRow(12, "jean@example.com", "Jean Sammet", "customer", "FR"),
)

CATEGORIES: tuple[tuple[str, str], ...] = (
    ("coffee", "Coffee"),
    ("tea", "Tea"),
    ("brewing-gear", "Brewing gear"),
    ("mugs", "Mugs & cups"),
)

PRODUCTS: tuple[ProductRow, ...] = (
    ProductRow("COF-101", "Ethiopia Yirgacheffe 250g", "coffee", 1490, 250),
    ProductRow("COF-102", "Colombia Huila 250g", "coffee", 1290, 250),
    ProductRow("COF-103", "Espresso Blend 1kg", "coffee", 3890, 1000),
    ProductRow("COF-104", "Decaf Swiss Water 250g", "coffee", 1390, 250),
    ProductRow("TEA-201", "Sencha Asahi 100g", "tea", 1850, 100),
    ProductRow("TEA-202", "Darjeeling First Flush 100g", "tea", 2200, 100),
    ProductRow("TEA-203", "Rooibos Vanilla 200g", "tea", 990, 200),
    ProductRow("GEA-301", "Pour-over Dripper", "brewing-gear", 2490, 400),
    ProductRow("GEA-302", "Gooseneck Kettle 1L", "brewing-gear", 5900, 900),
    ProductRow("GEA-303", "Burr Grinder", "brewing-gear", 12900, 2100),
    ProductRow("GEA-304", "Paper Filters x100", "brewing-gear", 590, 150),
    ProductRow("MUG-401", "Stoneware Mug 350ml", "mugs", 1800, 420),
    ProductRow("MUG-402", "Double-wall Glass 250ml", "mugs", 1600, 260),
    ProductRow("MUG-403", "Travel Tumbler", "mugs", 2700, 380),
)

WAREHOUSES: tuple[str, ...] = ("fra1", "iad1", "sfo1")

COUPONS: dict[str, dict[str, int | str]] = {
    "WELCOME10": {"kind": "percent", "value": 1000, "min_cents": 0},
    "SPRING5": {"kind": "fixed", "value": 500, "min_cents": 3000},
    "FREESHIP": {"kind": "shipping", "value": 0, "min_cents": 2000},
}

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")


def orders() -> list[dict[str, object]]:
    """36 orders, ids 1001..1036, spread over the last 18 days."""
    rng = random.Random(1001)
    rows: list[dict[str, object]] = []
    for index in range(36):
        line_count = rng.randint(1, 3)
        picks = rng.sample(range(len(PRODUCTS)), line_count)
        lines = [
            {"sku": PRODUCTS[p].sku, "quantity": rng.randint(1, 3), "unit_cents": PRODUCTS[p].price_cents}
            for p in sorted(picks)
        ]
        rows.append(
            {
                "id": 1001 + index,
                "user_id": USERS[rng.randrange(len(USERS))].id,
                "status": ORDER_STATUSES[rng.choices(range(6), weights=(2, 3, 3, 6, 1, 1))[0]],
                "created_at": clock.days_ago(index // 2, hours=rng.randint(0, 11)),
                "shipping_cents": rng.choice((0, 490, 690)),
                "lines": lines,
            }
        )
    # Order 1001 is the health probe target; keep it delivered and owned by user 3.
    rows[0]["status"] = "delivered"
    rows[0]["user_id"] = 3
    return rows


def stock() -> dict[tuple[str, str], int]:
    rng = random.Random(7)
    return {(wh, p.sku): rng.randint(0, 40) for wh in WAREHOUSES for p in PRODUCTS}


def reviews() -> list[dict[str, object]]:
    rng = random.Random(42)
    texts = ("Excellent.", "Would buy again.", "Arrived quickly.", "Not my taste.", "Great value.")
    return [
        {
            "id": 1 + i,
            "sku": PRODUCTS[i % len(PRODUCTS)].sku,
            "user_id": USERS[rng.randrange(len(USERS))].id,
            "rating": rng.randint(2, 5),
            "text": texts[i % len(texts)],
            "created_at": clock.days_ago(rng.randint(0, 30)),
        }
        for i in range(24)
    ]


def addresses() -> list[dict[str, object]]:
    return [
        {
            "id": 100 + user.id,
            "user_id": user.id,
            "line1": f"{10 + user.id} Example Street",
            "city": {"GB": "London", "US": "Boston", "NL": "Amsterdam", "DE": "Berlin", "FR": "Paris"}[user.country],
            "country": user.country,
            "default": True,
        }
        for user in USERS
    ]
