"""GET /api/products/{sku} — one product with rating and stock."""

from lib.http import HTTPError, endpoint
from services import catalog, inventory


@endpoint
def handler(request):
    product = catalog.get_product(request.path_params.get("sku", ""))
    if product is None:
        raise HTTPError(404, "product not found")
    stock = inventory.availability(product.sku)
    return {
        **product.to_dict(),
        "rating": catalog.rating(product.sku),
        "in_stock": sum(stock.values()) > 0,
        "stock": stock,
    }
