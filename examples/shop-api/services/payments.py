"""Payments: authorization at checkout, refunds (cycle with services.orders)."""

from __future__ import annotations

from lib import clock, db
from lib.http import HTTPError
from lib.money import Money
from models import Order, OrderStatus, Payment, PaymentStatus
from services import orders as order_service


def for_order(order_id: int) -> list[Payment]:
    return db.get_db().payments.filter(lambda p: p.order_id == order_id)


def authorize(order: Order) -> Payment:
    database = db.get_db()
    payment = Payment(
        id=database.next_id(database.payments),
        order_id=order.id,
        amount=order.total(),
        status=PaymentStatus.AUTHORIZED,
        created_at=clock.now(),
    )
    return database.payments.insert(payment)


def capture(payment: Payment) -> Payment:
    if payment.status is not PaymentStatus.AUTHORIZED:
        raise HTTPError(409, f"payment {payment.id} is {payment.status.value}")
    payment.status = PaymentStatus.CAPTURED
    order = order_service.get_order(payment.order_id)
    if order is not None and order.status is OrderStatus.PENDING:
        order_service.transition(order, OrderStatus.PAID)
    return payment


def refund_preview(payment: Payment) -> dict[str, object]:
    order = order_service.get_order(payment.order_id)
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "refundable": payment.refundable,
        "eligible": payment.refundable.cents > 0
        and order is not None
        and order.can_transition(OrderStatus.REFUNDED),
    }


def refund(payment: Payment, amount: Money | None = None) -> Payment:
    preview = refund_preview(payment)
    if not preview["eligible"]:
        raise HTTPError(409, "payment is not refundable")
    amount = amount or payment.refundable
    if amount.cents > payment.refundable.cents:
        raise HTTPError(422, "refund exceeds refundable amount")
    payment.refunded = (payment.refunded or Money.zero(amount.currency)) + amount
    if payment.refundable.cents == 0:
        payment.status = PaymentStatus.REFUNDED
        order = order_service.get_order(payment.order_id)
        if order is not None:
            order_service.transition(order, OrderStatus.REFUNDED)
    return payment
