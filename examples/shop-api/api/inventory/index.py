"""GET /api/inventory — stock per product and warehouse; ?low=1 for low stock only."""

from lib.http import endpoint
from services import inventory


@endpoint
def handler(request):
    rows = inventory.overview()
    if request.query.get("low") in ("1", "true"):
        rows = [row for row in rows if row["low"]]
    return {"threshold": inventory.LOW_STOCK, "items": rows}
