"""DHL rates (demo numbers)."""

from .base import Carrier

CARRIER = Carrier(
    name="dhl",
    countries=frozenset({"DE", "FR", "NL", "GB"}),
    base_cents=490,
    per_kg_cents=120,
    transit={"DE": 1, "NL": 2, "FR": 2, "GB": 3},
)
