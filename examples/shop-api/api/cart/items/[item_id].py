"""/api/cart/items/{item_id} — GET, PATCH (quantity) or DELETE one cart line."""

from lib import db, ids, validation
from lib.http import HTTPError, endpoint, json_body, require_method


@endpoint
def handler(request):
    require_method(request, "GET", "PATCH", "DELETE")
    cart = db.get_db().carts.get(request.headers.get("x-cart-id", "demo"))
    item_id = ids.parse_int(request.path_params.get("item_id"))
    item = cart.find(item_id) if cart is not None and item_id else None
    if cart is None or item is None:
        raise HTTPError(404, "cart item not found")
    if request.method == "DELETE":
        cart.remove(item.id)
        return ("", 204)
    if request.method == "PATCH":
        item.quantity = validation.quantity(json_body(request).get("quantity"))
    return item.to_dict()
