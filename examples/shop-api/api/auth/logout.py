"""POST /api/auth/logout — revoke the presented token."""

from lib import auth
from lib.http import HTTPError, bearer_token, endpoint, require_method


@endpoint
def handler(request):
    require_method(request, "POST")
    token = bearer_token(request)
    if token is None or auth.verify_token(token) is None:
        raise HTTPError(401, "no valid token presented")
    auth.revoke(token)
    return ({"revoked": True}, 200)
