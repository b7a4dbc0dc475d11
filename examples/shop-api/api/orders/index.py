"""GET /api/orders — the caller's orders (all orders for admins)."""

from lib import auth, pagination
from lib.config import get_settings
from lib.http import endpoint
from services import orders as order_service


@endpoint
def handler(request):
    user = auth.require_user(request)
    scope = None if get_settings().is_admin(user) else user.id
    orders = order_service.list_orders(user_id=scope, status=request.query.get("status"))
    return pagination.paginate(orders, request)
