"""GET /api/reviews/{review_id} — one review with its stars rendered."""

from lib import db, ids
from lib.http import HTTPError, endpoint


@endpoint
def handler(request):
    review_id = ids.parse_int(request.path_params.get("review_id"))
    review = db.get_db().reviews.get(review_id) if review_id else None
    if review is None:
        raise HTTPError(404, "review not found")
    author = db.get_db().users.get(review.user_id)
    return {**review.to_dict(), "stars": review.stars, "author": author.public() if author else None}
