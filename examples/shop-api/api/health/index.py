"""GET /api/health — cheap liveness check (no data access)."""

from lib import clock, serialize


def handler(request):
    return {"status": "ok", "time": clock.isoformat(clock.now()), "json": serialize.backend()}
