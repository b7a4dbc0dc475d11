"""Carrier rate tables.

``integrations`` is a namespace package (no ``__init__.py``): partner teams
drop carrier modules in here without touching a package initialiser.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Carrier:
    name: str
    countries: frozenset[str]
    base_cents: int
    per_kg_cents: int
    max_weight_g: int = 30_000
    transit: dict[str, int] = field(default_factory=dict)

    def quote(self, weight_g: int, country: str) -> int | None:
        if country not in self.countries or weight_g > self.max_weight_g:
            return None
        kilos = max(1, -(-weight_g // 1000))
        return self.base_cents + self.per_kg_cents * (kilos - 1)

    def transit_days(self, country: str) -> int | None:
        return self.transit.get(country)
