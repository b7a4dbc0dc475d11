"""Product and category queries."""

from __future__ import annotations

from lib import db
from lib.ids import normalize_sku
from models import Category, Product

SORT_KEYS = {
    "name": lambda p: (p.name.lower(), p.sku),
    "price": lambda p: (p.price.cents, p.sku),
    "-price": lambda p: (-p.price.cents, p.sku),
    "sku": lambda p: (p.sku,),
}


def list_products(category: str | None = None, sort: str = "sku") -> list[Product]:
    products = db.get_db().products.filter(lambda p: p.active)
    if category:
        products = [p for p in products if p.category == category]
    return sorted(products, key=SORT_KEYS.get(sort, SORT_KEYS["sku"]))


def get_product(raw_sku: str) -> Product | None:
    sku = normalize_sku(raw_sku)
    return db.get_db().products.get(sku) if sku else None


def search(query: str, limit: int = 10) -> list[Product]:
    terms = [t for t in query.lower().split() if t]
    if not terms:
        return []
    scored = []
    for product in db.get_db().products:
        score = sum(1 for term in terms if product.matches(term))
        if score:
            scored.append((-score, product.sku, product))
    return [p for _, _, p in sorted(scored)[:limit]]


def categories_with_counts() -> list[dict[str, object]]:
    database = db.get_db()
    counts: dict[str, int] = {}
    for product in database.products:
        counts[product.category] = counts.get(product.category, 0) + 1
    return [{"slug": c.slug, "title": c.title, "products": counts.get(c.slug, 0)} for c in database.categories]


def get_category(slug: str) -> Category | None:
    return db.get_db().categories.get(slug)


def rating(sku: str) -> dict[str, object]:
    reviews = db.get_db().reviews.filter(lambda r: r.sku == sku)
    if not reviews:
        return {"average": None, "count": 0}
    return {"average": round(sum(r.rating for r in reviews) / len(reviews), 2), "count": len(reviews)}
