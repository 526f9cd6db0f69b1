"""Signed links: one salt per purpose, an explicit lifetime, and single use where it matters.

itsdangerous signs but does not encrypt, so payloads carry ids and a short digest of the
state that using the link changes (a password stamp, a quick-pay version) — never secrets.
Changing that state makes every older link fail, which is what makes them single-use.
"""

import hashlib
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

LIFETIMES = {
    "pay-link": timedelta(days=7),  # it was 60 days (issue 16 finding 2)
    "register": timedelta(hours=24),
    "invite": timedelta(days=7),
    "reset": timedelta(hours=1),
    "checkout": timedelta(hours=2),
    "quickpay-session": timedelta(minutes=15),
}


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"doorstep.{purpose}")


def state_digest(*parts) -> str:
    """A short digest of the state a link is bound to."""
    raw = "|".join(str(p) for p in parts).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def make(purpose: str, payload) -> str:
    """Sign a payload for one purpose."""
    if purpose not in LIFETIMES:
        raise KeyError(purpose)
    return _serializer(purpose).dumps(payload)


def read(purpose: str, token: str, max_age: timedelta | None = None):
    """Return the payload of a valid, unexpired token for this purpose, else None."""
    age = max_age or LIFETIMES[purpose]
    try:
        return _serializer(purpose).loads(token, max_age=int(age.total_seconds()))
    except (BadSignature, TypeError, ValueError):
        return None
