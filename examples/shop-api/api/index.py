"""GET /api — service banner and a map of the main resources."""

from lib.config import get_settings


def handler(request):
    settings = get_settings()
    return {
        "service": settings.service_name,
        "version": settings.version,
        "resources": {
            "products": "/api/products",
            "categories": "/api/categories",
            "cart": "/api/cart",
            "orders": "/api/orders",
            "health": "/api/health",
        },
    }
