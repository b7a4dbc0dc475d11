"""GET /api/categories/{slug} — one category and its products."""

from lib import ids
from lib.http import HTTPError, endpoint
from services import catalog


@endpoint
def handler(request):
    slug = request.path_params.get("slug", "")
    category = catalog.get_category(slug) if ids.is_slug(slug) else None
    if category is None:
        raise HTTPError(404, "category not found")
    return {**category.to_dict(), "products": catalog.list_products(category=slug, sort="name")}
