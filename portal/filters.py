"""Jinja filters for money, dates and codes: the one place values are formatted for people."""

from datetime import UTC, date, datetime
from decimal import Decimal

from .money import format_cents
from .security import format_code


def money(cents, currency: str = "USD") -> str:
    """`123456` -> `$1,234.56` (other currencies get their code)."""
    return format_cents(cents, currency)


def datefmt(value) -> str:
    """A date as `Nov 23, 2026`."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    if isinstance(value, date):
        return f"{value:%b} {value.day}, {value.year}"
    return str(value)


def datetimefmt(value) -> str:
    """A timestamp as `Nov 23, 2026 14:05 UTC`."""
    if not value:
        return ""
    value = value.astimezone(UTC)
    return f"{datefmt(value)} {value:%H:%M} UTC"


def quantity(milli) -> str:
    """Thousandths to a plain number: `2500` -> `2.5`."""
    value = Decimal(milli) / 1000
    return f"{value.normalize():f}"


def init_app(app) -> None:
    app.jinja_env.filters.update(
        money=money, date=datefmt, datetime=datetimefmt, quantity=quantity, code=format_code
    )
