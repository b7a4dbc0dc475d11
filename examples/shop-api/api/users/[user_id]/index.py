"""GET /api/users/{user_id} — public profile; full profile for self or admin."""

from lib import auth, db, ids
from lib.config import get_settings
from lib.http import HTTPError, endpoint


@endpoint
def handler(request):
    user_id = ids.parse_int(request.path_params.get("user_id"))
    user = db.get_db().users.get(user_id) if user_id else None
    if user is None:
        raise HTTPError(404, "user not found")
    viewer = auth.current_user(request)
    if viewer is not None and (viewer.id == user.id or get_settings().is_admin(viewer)):
        return user.to_dict()
    return user.public()
