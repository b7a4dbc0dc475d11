"""GET /api/payments — payments ledger (admin only)."""

from lib import auth, db, pagination
from lib.http import endpoint


@endpoint
def handler(request):
    auth.require_admin(request)
    payments = db.get_db().payments.all()
    status = request.query.get("status")
    if status:
        payments = [p for p in payments if p.status.value == status]
    return pagination.paginate(payments, request)
