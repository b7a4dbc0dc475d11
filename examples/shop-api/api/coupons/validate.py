"""GET /api/coupons/validate?code=...&subtotal_cents=... — is a coupon usable?"""

from lib.http import HTTPError, endpoint, query_int
from services import pricing


@endpoint
def handler(request):
    code = request.query.get("code", "")
    if not code:
        raise HTTPError(400, "missing query parameter 'code'")
    rule = pricing.coupon_rule(code)
    if rule is None:
        return {"code": code.upper(), "valid": False, "reason": "unknown code"}
    subtotal = query_int(request, "subtotal_cents", 0, low=0, high=10_000_000)
    if subtotal < int(rule["min_cents"]):
        return {"code": code.upper(), "valid": False, "reason": f"minimum order {rule['min_cents']} cents"}
    return {"code": code.upper(), "valid": True, "kind": rule["kind"], "value": rule["value"]}
