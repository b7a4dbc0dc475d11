"""GET /api/users — public user directory, paginated."""

from lib import db, pagination
from lib.http import endpoint


@endpoint
def handler(request):
    users = db.get_db().users.all()
    country = request.query.get("country")
    if country:
        users = [u for u in users if u.country == country.upper()]
    page = pagination.paginate(users, request)
    page["items"] = [u.public() for u in page["items"]]
    return page
