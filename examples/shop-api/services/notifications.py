"""Outbound notifications, queued in memory (no mail server in the example)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lib import clock


@dataclass
class Outbox:
    messages: list[dict[str, object]] = field(default_factory=list)

    def enqueue(self, to: str, template: str, **context: object) -> dict[str, object]:
        from lib import serialize  # deferred: only needed when something is sent

        message = {
            "to": to,
            "template": template,
            "context": serialize.to_jsonable(context),
            "queued_at": clock.isoformat(clock.now()),
        }
        self.messages.append(message)
        return message

    def drain(self) -> list[dict[str, object]]:
        drained, self.messages = self.messages, []
        return drained


OUTBOX = Outbox()


def order_confirmation(email: str, order_id: int, total: object) -> dict[str, object]:
    return OUTBOX.enqueue(email, "order-confirmation", order_id=order_id, total=total)
