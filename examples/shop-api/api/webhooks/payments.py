"""POST /api/webhooks/payments — payment-provider callbacks.

A raw ASGI application (no framework). The body must be signed with the
shared webhook secret in the ``x-signature`` header.
"""

import json

from integrations import webhooks
from lib import db
from lib.http import HTTPError


async def _read_body(receive):
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send, status, payload):
    body = json.dumps(payload, sort_keys=True).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def _apply(event):
    from services import payments  # deferred: only signed events touch payments

    payment = db.get_db().payments.get(event.get("payment_id"))
    if payment is None:
        return 404, {"error": "unknown payment"}
    if event.get("type") == "payment.captured":
        payments.capture(payment)
    elif event.get("type") != "payment.ping":
        return 422, {"error": "unsupported event type"}
    return 200, {"received": True, "payment_id": payment.id, "status": payment.status.value}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await _send_json(send, 405, {"error": "method not allowed"})
        return
    body = await _read_body(receive)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    if not webhooks.verify(body, headers.get("x-signature")):
        await _send_json(send, 401, {"error": "bad signature"})
        return
    try:
        event = json.loads(body)
        status, payload = _apply(event if isinstance(event, dict) else {})
    except json.JSONDecodeError:
        status, payload = 400, {"error": "body is not JSON"}
    except HTTPError as exc:
        status, payload = exc.status, {"error": exc.message}
    await _send_json(send, status, payload)
