"""Jinja filters for money, dates and codes: the one place values are formatted for people.

Timestamps show in the viewer's zone on pages (`clock.local_zone()`) and in the business's
zone in emails and wherever Python formats one itself.
"""

from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal

from jinja2 import pass_context

from . import clock
from .money import format_cents
from .security import format_code
from .services.providers import PROVIDER_LABELS

# Invoice states, payment and login statuses as people read them (providers come from their
# own `label`).
STATUS_LABELS = {
    "open": "Open",
    "overdue": "Overdue",
    "paid": "Paid",
    "partly paid": "Partly paid",
    "void": "Void",
    "applied": "Applied",
    "pending": "Waiting for the money",
    "rejected": "Rejected",
    "cancelled": "Cancelled by the payer",
    "approved": "Approved",
    "active": "Active",
    "invited": "Invited",
    "disabled": "Disabled",
    "sent": "Sent",
    "queued": "Queued",
    "failed": "Failed",
}


def money(cents, currency: str = "USD") -> str:
    """`123456` -> `$1,234.56` (other currencies get their code)."""
    return format_cents(cents, currency)


def datefmt(value, zone: tzinfo | None = None) -> str:
    """A date as `Nov 23, 2026`; a timestamp's date is the one in `zone` (default: the
    business's)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(zone or clock.business_zone()).date()
    if isinstance(value, date):
        return f"{value:%b} {value.day}, {value.year}"
    return str(value)


def datetimefmt(value, zone: tzinfo | None = None) -> str:
    """A timestamp as `Nov 23, 2026 09:05 EST`, in `zone` (default: the business's)."""
    if not value:
        return ""
    value = value.astimezone(zone or clock.business_zone())
    return f"{datefmt(value, value.tzinfo)} {value:%H:%M} {clock.abbreviation(value)}"


def isotime(value) -> str:
    """A timestamp for `<time datetime>`: ISO 8601 in UTC, whole seconds."""
    if not value:
        return ""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def _zone_for(context) -> tzinfo:
    # Emails go to people whose zone the request's user does not know: the business's zone.
    if (context.name or "").startswith("email/"):
        return clock.business_zone()
    return clock.local_zone()


@pass_context
def _viewer_date(context, value) -> str:
    if not isinstance(value, datetime):
        return datefmt(value)
    return datefmt(value, _zone_for(context))


@pass_context
def _viewer_datetime(context, value) -> str:
    if not value:
        return ""
    return datetimefmt(value, _zone_for(context))


def quantity(milli) -> str:
    """Thousandths to a plain number: `2500` -> `2.5`."""
    value = Decimal(milli) / 1000
    return f"{value.normalize():f}"


def label(code) -> str:
    """A status or provider code as people read it: `offline` -> `Bank transfer or cheque`,
    `pending` -> `Waiting for the money`; an unknown code is shown capitalised."""
    if code is None or code == "":
        return ""
    code = str(code)
    known = PROVIDER_LABELS.get(code) or STATUS_LABELS.get(code)
    return known or code.replace("-", " ").capitalize()


def initials(name) -> str:
    """A name a guest may recognise but not harvest (A9): `Acme Manufacturing` -> `A… M…`."""
    return " ".join(f"{word[0]}…" for word in str(name or "").split())


def init_app(app) -> None:
    app.jinja_env.filters.update(
        money=money,
        date=_viewer_date,
        datetime=_viewer_datetime,
        isotime=isotime,
        quantity=quantity,
        code=format_code,
        label=label,
        initials=initials,
    )
