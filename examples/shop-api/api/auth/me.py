"""GET /api/auth/me — the authenticated user, with an order summary."""

from lib import auth, db
from lib.http import endpoint


@endpoint
def handler(request):
    user = auth.require_user(request)
    profile = user.to_dict()
    profile["orders"] = user.order_summary(db.get_db().orders)
    return profile
