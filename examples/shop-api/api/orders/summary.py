"""GET /api/orders/summary — counts by status and revenue (public demo stats)."""

from lib.http import endpoint
from services import orders as order_service


@endpoint
def handler(request):
    return order_service.summary()
