"""Stripe for the test suite, on loopback: see `server.StripeFake` and tests/stripe_fixtures.py."""

from .server import Delivery, StripeError, StripeFake

__all__ = ["Delivery", "StripeError", "StripeFake"]
