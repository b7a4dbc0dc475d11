"""GET /api/categories — categories with product counts."""

from services import catalog


def handler(request):
    return {"items": catalog.categories_with_counts()}
