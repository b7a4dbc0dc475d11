"""GET /api/orders/{id} — one order with its payments and customer."""

from lib import db, ids
from lib.http import HTTPError, endpoint
from services import orders as order_service
from services import payments


@endpoint
def handler(request):
    order_id = ids.parse_int(request.path_params.get("id"))
    order = order_service.get_order(order_id) if order_id else None
    if order is None:
        raise HTTPError(404, "order not found")
    users = {u.id: u for u in db.get_db().users}
    customer = order.customer(users)
    return {
        **order.to_dict(),
        "customer": customer.public() if customer else None,
        "payments": [p.to_dict() for p in payments.for_order(order.id)],
    }
