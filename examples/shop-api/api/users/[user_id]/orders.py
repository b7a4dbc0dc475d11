"""GET /api/users/{user_id}/orders — the owner (or an admin) sees the orders;
anyone else only the counts."""

from lib import auth, db, ids, pagination
from lib.config import get_settings
from lib.http import HTTPError, endpoint
from services import orders as order_service


@endpoint
def handler(request):
    user_id = ids.parse_int(request.path_params.get("user_id"))
    user = db.get_db().users.get(user_id) if user_id else None
    if user is None:
        raise HTTPError(404, "user not found")
    viewer = auth.current_user(request)
    if viewer is None or (viewer.id != user.id and not get_settings().is_admin(viewer)):
        return {"user_id": user.id, "summary": user.order_summary(db.get_db().orders)}
    orders = order_service.list_orders(user_id=user.id, status=request.query.get("status"))
    return pagination.paginate(orders, request)
