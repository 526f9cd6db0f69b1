"""The business's calendar: what day and time it is where the business is.

Due dates, overdue, aging buckets, discount windows and statement ranges follow the
business's calendar day (the `time_zone` setting), not UTC's; every place that asks "what
day is it" calls `business_today()`. Timestamps are stored in UTC and shown in the
viewer's zone (`local_zone()`): a signed-in customer's own, else the business's.
"""

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import g, has_request_context

from .db import utcnow

# The zones offered in the settings and on My account; any other IANA name is accepted too.
COMMON_ZONES = (
    "UTC",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Phoenix",
    "America/Denver",
    "America/Edmonton",
    "America/Chicago",
    "America/Winnipeg",
    "America/Mexico_City",
    "America/New_York",
    "America/Toronto",
    "America/Halifax",
    "America/St_Johns",
    "America/Bogota",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
    "Atlantic/Reykjavik",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Asia/Jerusalem",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Singapore",
    "Asia/Hong_Kong",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Pacific/Auckland",
)


@lru_cache(maxsize=128)
def zone(name: str) -> tzinfo | None:
    """The zone of an IANA name (`"America/New_York"`), or None for an unknown or blank one."""
    if not name:
        return None
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def is_zone(name) -> bool:
    """True for a time zone name this system knows."""
    return isinstance(name, str) and zone(name) is not None


def zone_names(current: str | None = None) -> list[str]:
    """The zones to offer: the common ones, plus the one in use when it is not common."""
    names = list(COMMON_ZONES)
    if current and current not in names and is_zone(current):
        names.append(current)
    return names


def business_zone() -> tzinfo:
    """The business's time zone (UTC when the setting names none this system knows)."""
    from .services import settings  # settings -> models -> db; clock is imported by services

    return zone(settings.get("time_zone")) or UTC


def local_zone() -> tzinfo:
    """The zone the current viewer reads times in: a signed-in customer's own, else the
    business's (also for staff, guests, emails and anything outside a request)."""
    if not has_request_context():
        return business_zone()
    if "local_zone" not in g:
        g.local_zone = _viewer_zone() or business_zone()
    return g.local_zone


def _viewer_zone() -> tzinfo | None:
    from flask_login import current_user

    # Staff logins and guests have no zone of their own; they see the business's.
    return zone(getattr(current_user, "time_zone", None) or "")


def business_today() -> date:
    """Today's date in the business's time zone."""
    return utcnow().astimezone(business_zone()).date()


def now_local() -> datetime:
    """The current time in the viewer's zone."""
    return utcnow().astimezone(local_zone())


def abbreviation(value: datetime) -> str:
    """The zone's short name at that moment (`EST`, `NZDT`); `UTC+04` where it has none."""
    name = value.strftime("%Z")
    if name and name[0] in "+-":
        return f"UTC{name}"
    return name or "UTC"
