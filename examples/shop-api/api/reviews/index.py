"""GET /api/reviews?sku=... — reviews, newest first; POST to add one."""

from lib import auth, clock, db, pagination, validation
from lib.http import HTTPError, created, endpoint, json_body, require_method
from models import Review


@endpoint
def handler(request):
    require_method(request, "GET", "POST")
    database = db.get_db()
    if request.method == "POST":
        user = auth.require_user(request)
        payload = json_body(request)
        validation.require_fields(payload, "sku", "rating", "text")
        if database.products.get(payload["sku"]) is None:
            raise HTTPError(422, "unknown sku")
        rating = validation.quantity(payload["rating"], maximum=5)
        review = database.reviews.insert(
            Review(database.next_id(database.reviews), payload["sku"], user.id, rating, str(payload["text"])[:500],
                   clock.now())
        )
        return created(review.to_dict(), f"/api/reviews/{review.id}")
    reviews = database.reviews.all()
    sku = request.query.get("sku")
    if sku:
        reviews = [r for r in reviews if r.sku == sku.upper()]
    reviews.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return pagination.paginate(reviews, request)
