"""/api/cart/checkout — GET a priced preview, POST to place the order."""

from lib import auth, db, validation
from lib.http import HTTPError, created, endpoint, json_body, require_method
from services import notifications, pricing
from services import orders as order_service


@endpoint
def handler(request):
    require_method(request, "GET", "POST")
    cart = db.get_db().carts.get(request.headers.get("x-cart-id", "demo"))
    if cart is None:
        raise HTTPError(404, "cart not found")
    if request.method == "GET":
        return pricing.price_cart(cart, validation.country(request.query.get("country", "DE")))
    user = auth.require_user(request)
    payload = json_body(request)
    country = validation.country(payload.get("country", user.country))
    if payload.get("coupon"):
        cart.coupon = str(payload["coupon"])
    order = order_service.checkout(cart, user.id, country)
    notifications.order_confirmation(user.email, order.id, order.total())
    return created(order.to_dict(), f"/api/orders/{order.id}")
