"""Integer-cent money arithmetic. Never floats for prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from .config import get_settings

_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


@dataclass(frozen=True, order=True)
class Money:
    cents: int
    currency: str = "EUR"

    @classmethod
    def zero(cls, currency: str | None = None) -> Money:
        return cls(0, currency or get_settings().currency)

    @classmethod
    def parse(cls, text: str, currency: str | None = None) -> Money:
        """Parse ``"12.50"`` into 1250 cents."""
        value = Decimal(text).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        return cls(int(value * 100), currency or get_settings().currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.cents + other.cents, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.cents - other.cents, self.currency)

    def times(self, quantity: int) -> Money:
        return Money(self.cents * quantity, self.currency)

    def percent(self, basis_points: int) -> Money:
        """``basis_points`` / 10000 of this amount, banker's rounding."""
        exact = Decimal(self.cents) * Decimal(basis_points) / Decimal(10000)
        return Money(int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)), self.currency)

    def format(self) -> str:
        symbol = _CURRENCY_SYMBOLS.get(self.currency, self.currency + " ")
        sign = "-" if self.cents < 0 else ""
        whole, frac = divmod(abs(self.cents), 100)
        return f"{sign}{symbol}{whole:,}.{frac:02d}"

    def to_dict(self) -> dict[str, object]:
        return {"cents": self.cents, "currency": self.currency, "display": self.format()}


def total(amounts: list[Money], currency: str | None = None) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
