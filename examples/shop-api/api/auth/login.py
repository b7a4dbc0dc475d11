"""POST /api/auth/login — exchange email + password for a bearer token."""

from lib import auth, validation
from lib.http import HTTPError, endpoint, json_body, require_method


@endpoint
def handler(request):
    require_method(request, "POST")
    payload = json_body(request)
    validation.require_fields(payload, "email", "password")
    user = auth.check_password(validation.email(payload["email"]), str(payload["password"]))
    if user is None:
        raise HTTPError(401, "invalid credentials")
    return {"token": auth.issue_token(user.id), "token_type": "bearer", "user": user.public()}
