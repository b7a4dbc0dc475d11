"""UPS rates (demo numbers)."""

from .base import Carrier

CARRIER = Carrier(
    name="ups",
    countries=frozenset({"DE", "FR", "NL", "GB", "US"}),
    base_cents=690,
    per_kg_cents=90,
    transit={"US": 2, "GB": 2, "DE": 2, "FR": 3, "NL": 3},
)
