"""The business's calendar: what day and time it is where the business is.

Due dates, overdue, aging buckets, discount windows and statement ranges follow the
business's calendar day, not UTC's; every place that asks "what day is it" calls
`business_today()`.
"""

from datetime import date

from .db import utcnow


def business_today() -> date:
    """Today's date in the business's time zone."""
    return utcnow().date()
