"""/api/cart — GET the cart, POST an item, DELETE to empty it.

The cart is chosen by the ``x-cart-id`` header (default: the demo cart).
"""

from lib import db, validation
from lib.http import HTTPError, created, endpoint, json_body, require_method
from models import Cart
from services import pricing


def cart_for(request) -> Cart:
    database = db.get_db()
    cart_id = request.headers.get("x-cart-id", "demo")
    cart = database.carts.get(cart_id)
    if cart is None:
        cart = database.carts.insert(Cart(id=cart_id))
    return cart


@endpoint
def handler(request):
    require_method(request, "GET", "POST", "DELETE")
    cart = cart_for(request)
    if request.method == "POST":
        payload = json_body(request)
        validation.require_fields(payload, "sku", "quantity")
        if db.get_db().products.get(payload["sku"]) is None:
            raise HTTPError(422, "unknown sku")
        item = cart.add(payload["sku"], validation.quantity(payload["quantity"]))
        return created(item.to_dict(), f"/api/cart/items/{item.id}")
    if request.method == "DELETE":
        cart.items.clear()
        return ({"id": cart.id, "items": []}, 200)
    return {"id": cart.id, "items": cart.items, "pricing": pricing.price_cart(cart, request.query.get("country", "DE"))}
