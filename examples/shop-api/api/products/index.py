"""GET /api/products — catalogue listing with category filter and sort."""

from lib import pagination
from lib.http import endpoint
from services import catalog


@endpoint
def handler(request):
    products = catalog.list_products(
        category=request.query.get("category"),
        sort=request.query.get("sort", "sku"),
    )
    return pagination.paginate(products, request)
