"""GET /api/reports/export?days=14&format=csv|tsv — daily sales as a download.

A plain WSGI application (no framework); it sees the full path in PATH_INFO.
"""

import csv
import io
from urllib.parse import parse_qs

from services import reports

FORMATS = {"csv": (",", "text/csv"), "tsv": ("\t", "text/tab-separated-values")}


def _reply(start_response, status, body, content_type="application/json"):
    data = body.encode()
    start_response(status, [("Content-Type", content_type + "; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ, start_response):
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        return _reply(start_response, "405 Method Not Allowed", '{"error": "method not allowed"}')
    if environ.get("PATH_INFO", "") != "/api/reports/export":
        return _reply(start_response, "404 Not Found", '{"error": "not found"}')
    query = parse_qs(environ.get("QUERY_STRING", ""))
    fmt = query.get("format", ["csv"])[0]
    if fmt not in FORMATS:
        return _reply(start_response, "400 Bad Request", '{"error": "format must be csv or tsv"}')
    try:
        days = max(1, min(90, int(query.get("days", ["14"])[0])))
    except ValueError:
        return _reply(start_response, "400 Bad Request", '{"error": "days must be an integer"}')
    delimiter, content_type = FORMATS[fmt]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["day", "orders", "revenue_cents"])
    for row in reports.daily_sales(days):
        writer.writerow([row["day"], row["orders"], row["revenue_cents"]])
    return _reply(start_response, "200 OK", buffer.getvalue(), content_type)
