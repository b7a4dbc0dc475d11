"""GET /api/reports/sales — daily revenue, per-category totals, top sellers."""

from lib.http import endpoint, query_int
from services import reports


@endpoint
def handler(request):
    days = query_int(request, "days", 14, high=90)
    return {
        "days": days,
        "daily": reports.daily_sales(days),
        "by_category": reports.by_category(),
        "order_value": reports.order_value_stats(),
        "top_products": reports.top_products(),
    }
