"""GET /api/shipping/carriers — the carriers we ship with."""

import services.shipping


def handler(request):
    return {"items": services.shipping.carriers()}
