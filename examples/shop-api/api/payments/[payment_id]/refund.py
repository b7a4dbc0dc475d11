"""/api/payments/{payment_id}/refund — GET a refund preview, POST (admin) to refund."""

from lib import auth, db, ids
from lib.http import HTTPError, endpoint, json_body, require_method
from lib.money import Money
from services import payments


@endpoint
def handler(request):
    require_method(request, "GET", "POST")
    payment_id = ids.parse_int(request.path_params.get("payment_id"))
    payment = db.get_db().payments.get(payment_id) if payment_id else None
    if payment is None:
        raise HTTPError(404, "payment not found")
    if request.method == "GET":
        return payments.refund_preview(payment)
    auth.require_admin(request)
    amount_text = json_body(request).get("amount")
    amount = Money.parse(str(amount_text), payment.amount.currency) if amount_text else None
    return payments.refund(payment, amount).to_dict()
