"""/api/admin/cache — GET table sizes, DELETE to reload the in-memory data.

A Starlette application with two methods on one full path; admin token required.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lib import auth, db
from lib.config import get_settings


def _is_admin(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user_id = auth.verify_token(token) if scheme.lower() == "bearer" else None
    user = db.get_db().users.get(user_id) if user_id is not None else None
    return user is not None and get_settings().is_admin(user)


async def cache(request: Request) -> JSONResponse:
    if not _is_admin(request):
        return JSONResponse({"error": "admin role required"}, status_code=403)
    if request.method == "DELETE":
        db.reset()
        return JSONResponse({"reloaded": True, "tables": db.get_db().stats()})
    return JSONResponse({"tables": db.get_db().stats()})


app = Starlette(routes=[Route("/api/admin/cache", cache, methods=["GET", "DELETE"])])
