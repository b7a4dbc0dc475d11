"""Product reviews."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from .base import Model


@dataclass
class Review(Model):
    id: int
    sku: str
    user_id: int
    rating: int
    text: str
    created_at: _dt.datetime

    @property
    def stars(self) -> str:
        return "★" * self.rating + "☆" * (5 - self.rating)
