"""Payments against orders."""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass

from lib.money import Money

from .base import Model


class PaymentStatus(str, enum.Enum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    FAILED = "failed"


@dataclass
class Payment(Model):
    id: int
    order_id: int
    amount: Money
    status: PaymentStatus
    created_at: _dt.datetime
    provider: str = "demo-pay"
    refunded: Money | None = None

    @property
    def refundable(self) -> Money:
        if self.status is not PaymentStatus.CAPTURED:
            return Money.zero(self.amount.currency)
        return self.amount - (self.refunded or Money.zero(self.amount.currency))
