"""Failure throttles kept in the database, so every worker sees them and restarts keep them.

A rule allows `limit` failures per `window`, then locks the key for `lockout`; a daily cap
catches slow guessing. Keys are stored as keyed digests, never as typed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import locked, utcnow
from ..models import AuthThrottle
from ..security import digest


@dataclass(frozen=True)
class Rule:
    limit: int
    window: timedelta
    lockout: timedelta
    daily_cap: int


# Thresholds are documented in the README (checklist v5 6.1.1).
RULES = {
    # Per invoice number on the guest quick-pay lookup (A4).
    "quickpay-invoice": Rule(5, timedelta(minutes=15), timedelta(minutes=15), 20),
    # The account-number path is weaker (A11): half the tries.
    "quickpay-account": Rule(3, timedelta(minutes=15), timedelta(minutes=30), 10),
    # Per client address on any guest lookup (A5).
    "guest-ip": Rule(20, timedelta(minutes=10), timedelta(minutes=10), 100),
    # Sign-in per login email and per client address (C2).
    "login-email": Rule(5, timedelta(minutes=15), timedelta(minutes=15), 30),
    "login-ip": Rule(30, timedelta(minutes=15), timedelta(minutes=15), 200),
    # Staff two-step codes per login (C5): a million codes, five tries per quarter hour.
    "mfa-user": Rule(5, timedelta(minutes=15), timedelta(minutes=15), 20),
    # Registration, forgot password and pay-link emails per target (B3).
    "email-target": Rule(3, timedelta(hours=1), timedelta(hours=1), 10),
    # Self-registration tries per invoice number; the account-number path is weaker (A11).
    "register-invoice": Rule(5, timedelta(hours=1), timedelta(hours=1), 10),
    "register-account": Rule(3, timedelta(hours=1), timedelta(hours=2), 5),
    # Guest access forms per client address: registration, forgot password, request access.
    "register-ip": Rule(10, timedelta(hours=1), timedelta(hours=1), 30),
    "reset-ip": Rule(10, timedelta(hours=1), timedelta(hours=1), 50),
    "request-ip": Rule(5, timedelta(hours=1), timedelta(hours=1), 20),
    # Invitations a company's own administrators send (and resend), per company (B3).
    "invite-company": Rule(20, timedelta(hours=1), timedelta(hours=1), 50),
}


def _row(scope: str, key: str) -> AuthThrottle | None:
    return AuthThrottle.get_or_none(
        (AuthThrottle.scope == scope) & (AuthThrottle.key_hash == digest(f"{scope}:{key}"))
    )


def locked_until(scope: str, key: str, now: datetime | None = None) -> datetime | None:
    """When the key's lock ends, or None if it may try now."""
    now = now or utcnow()
    row = _row(scope, key)
    if row is None:
        return None
    rule = RULES[scope]
    if row.locked_until and row.locked_until > now:
        return row.locked_until
    if row.day_start > now - timedelta(days=1) and row.day_failures >= rule.daily_cap:
        return row.day_start + timedelta(days=1)
    return None


def counter_row(scope: str, key_hash: str, now: datetime) -> AuthThrottle:
    """The failure counter of (scope, key), made if new and locked for this transaction:
    insert-or-ignore, then lock the row, so two workers failing at once both count."""
    AuthThrottle.insert(
        scope=scope, key_hash=key_hash, window_start=now, day_start=now
    ).on_conflict_ignore().execute()
    return locked(
        AuthThrottle.select().where(
            (AuthThrottle.scope == scope) & (AuthThrottle.key_hash == key_hash)
        )
    ).get()


def fail(scope: str, key: str, now: datetime | None = None) -> datetime | None:
    """Count one failure or limited attempt (inside the caller's write transaction).

    Returns when the key's lock ends, or None while it may still try.
    """
    now = now or utcnow()
    rule = RULES[scope]
    row = counter_row(scope, digest(f"{scope}:{key}"), now)
    if row.window_start <= now - rule.window:
        row.window_start, row.failures = now, 0
    if row.day_start <= now - timedelta(days=1):
        row.day_start, row.day_failures = now, 0
    row.failures += 1
    row.day_failures += 1
    if row.failures >= rule.limit:
        row.locked_until = now + rule.lockout
        row.window_start, row.failures = now, 0
    row.save()
    return locked_until(scope, key, now)


def clear(scope: str, key: str) -> None:
    """Forget the failures of a key after a success."""
    AuthThrottle.delete().where(
        (AuthThrottle.scope == scope) & (AuthThrottle.key_hash == digest(f"{scope}:{key}"))
    ).execute()
