"""GET /api/products/search?q=... — naive relevance search.

A static segment next to the dynamic ``[sku].py``: the router must prefer it.
"""

from lib.http import HTTPError, endpoint, query_int
from services import catalog


@endpoint
def handler(request):
    query = request.query.get("q", "").strip()
    if not query:
        raise HTTPError(400, "missing query parameter 'q'")
    limit = query_int(request, "limit", 10, high=50)
    results = catalog.search(query, limit=limit)
    return {"query": query, "count": len(results), "items": results}
