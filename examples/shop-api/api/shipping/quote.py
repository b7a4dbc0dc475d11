"""GET /api/shipping/quote?weight_g=...&country=... — carrier quotes, cheapest first."""

from lib import validation
from lib.http import endpoint, query_int
from services import shipping


@endpoint
def handler(request):
    weight = query_int(request, "weight_g", 500, high=30_000)
    country = validation.country(request.query.get("country", "DE"))
    return {"weight_g": weight, "country": country, "quotes": shipping.quotes(weight, country)}
