"""Process-wide settings, read once from the environment with safe defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only needed for the annotation below; importing models here at run
    # time would pull the whole model layer into every config read.
    from models.user import User


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    service_name: str = "shop-api"
    version: str = "1.4.2"
    currency: str = "EUR"
    token_secret: bytes = b"shop-api-demo-secret-do-not-use"
    token_ttl_s: int = 3600
    default_page_size: int = 20
    max_page_size: int = 100
    free_shipping_over_cents: int = 5000
    vat_rates: dict[str, int] = field(
        default_factory=lambda: {"DE": 1900, "FR": 2000, "NL": 2100, "US": 0, "GB": 2000}
    )
    admin_roles: tuple[str, ...] = ("admin", "support")

    def vat_basis_points(self, country: str) -> int:
        return self.vat_rates.get(country.upper(), 2000)

    def is_admin(self, user: User) -> bool:
        return user.role in self.admin_roles


_settings: Settings | None = None


def get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings(
            currency=os.environ.get("SHOP_CURRENCY", "EUR"),
            default_page_size=_env_int("SHOP_PAGE_SIZE", 20),
            max_page_size=_env_int("SHOP_MAX_PAGE_SIZE", 100),
        )
    return _settings
