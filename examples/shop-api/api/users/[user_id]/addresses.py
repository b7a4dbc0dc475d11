"""GET /api/users/{user_id}/addresses — shipping addresses (city-level unless owner)."""

from lib import auth, db, ids
from lib.http import HTTPError, endpoint


@endpoint
def handler(request):
    user_id = ids.parse_int(request.path_params.get("user_id"))
    database = db.get_db()
    if user_id is None or database.users.get(user_id) is None:
        raise HTTPError(404, "user not found")
    addresses = database.addresses.filter(lambda a: a.user_id == user_id)
    viewer = auth.current_user(request)
    if viewer is not None and viewer.id == user_id:
        return {"items": addresses}
    return {"items": [{"id": a.id, "city": a.city, "country": a.country} for a in addresses]}
