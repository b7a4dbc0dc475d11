"""Catalogue entries."""

from __future__ import annotations

from dataclasses import dataclass

from lib.money import Money

from .base import Model


@dataclass(frozen=True)
class Category(Model):
    slug: str
    title: str


@dataclass(frozen=True)
class Product(Model):
    sku: str
    name: str
    category: str
    price: Money
    weight_g: int
    active: bool = True

    def matches(self, needle: str) -> bool:
        needle = needle.lower()
        return needle in self.name.lower() or needle in self.sku.lower() or needle == self.category
