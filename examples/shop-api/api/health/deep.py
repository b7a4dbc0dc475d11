"""GET /api/health/deep — readiness: exercises storage, pricing and encoding.

A Starlette application; it is mounted at its full path.
"""

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lib import db, serialize
from services import catalog, pricing


def _timed(check):
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a readiness probe reports, it does not raise
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 3)}


def _storage():
    return db.get_db().stats()


def _catalog():
    return {"products": len(catalog.list_products())}


def _pricing():
    cart = db.get_db().carts.require("demo")
    return serialize.to_jsonable(pricing.price_cart(cart, "DE")["total"])


async def deep_health(request: Request) -> JSONResponse:
    checks = {"storage": _timed(_storage), "catalog": _timed(_catalog), "pricing": _timed(_pricing)}
    healthy = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ok" if healthy else "degraded", "checks": checks},
                        status_code=200 if healthy else 503)


app = Starlette(routes=[Route("/api/health/deep", deep_health, methods=["GET"])])
