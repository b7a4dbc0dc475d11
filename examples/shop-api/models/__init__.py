"""Domain models. Plain dataclasses; persistence lives in ``lib.db``."""

from .base import Model
from .cart import Cart, CartItem
from .order import Order, OrderLine, OrderStatus
from .payment import Payment, PaymentStatus
from .product import Category, Product
from .review import Review
from .user import Address, User

__all__ = [
    "Address",
    "Cart",
    "CartItem",
    "Category",
    "Model",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Payment",
    "PaymentStatus",
    "Product",
    "Review",
    "User",
]
