"""GET /api/inventory/{warehouse}/{sku} — one stock level (two dynamic segments)."""

from lib.fixtures import WAREHOUSES
from lib.http import HTTPError, endpoint
from lib.ids import normalize_sku
from services import inventory


@endpoint
def handler(request):
    warehouse = request.path_params.get("warehouse", "")
    sku = normalize_sku(request.path_params.get("sku", ""))
    if warehouse not in WAREHOUSES:
        raise HTTPError(404, "unknown warehouse", known=list(WAREHOUSES))
    level = inventory.level(warehouse, sku) if sku else None
    if level is None:
        raise HTTPError(404, "unknown sku")
    return {"warehouse": warehouse, "sku": sku, "on_hand": level, "low": level < inventory.LOW_STOCK}
