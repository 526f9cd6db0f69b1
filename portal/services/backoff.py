"""Growing pauses after repeated sign-in failures, instead of a hard daily lock (checklist C2).

A key may fail `free` times within `window`; then it pauses for `first`, and each later
pause doubles up to `cap`. A quiet spell of `forget` without a failure starts over from
the first pause. Nothing here ever locks for a day, so guessing cannot become a denial of
service. Rows live in the same table as the fixed throttles (`AuthThrottle`), under their
own scopes, with keys stored as keyed digests:

- `failures`, `window_start`: failures in the current count and when it began;
- `day_failures`: how many pauses so far (the doubling level);
- `day_start`: when the last failure was (for `forget`);
- `locked_until`: the end of the current pause.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..db import utcnow
from ..models import AuthThrottle
from ..security import digest
from . import throttle


@dataclass(frozen=True)
class Backoff:
    free: int
    window: timedelta
    first: timedelta
    cap: timedelta
    forget: timedelta

    def pause(self, level: int) -> timedelta:
        """The pause after the `level`-th run of failures (1, 2, ...)."""
        return min(self.first * 2 ** min(level - 1, 16), self.cap)


# Thresholds are documented in SECURITY.md (sign-in) and the README (throttles).
RULES = {
    # One login from one client address: 5 failures, then 15, 30, 60, 60 ... minutes.
    "signin-pair": Backoff(
        5, timedelta(minutes=15), timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)
    ),
    # One login from every address that has not signed in to it lately (spread guessing):
    # 10 failures, then 15, 30, 60 minutes ... up to 4 hours. Addresses that signed in to
    # the login lately skip it, and a reset through the emailed link lifts it.
    "signin-login": Backoff(
        10, timedelta(minutes=15), timedelta(minutes=15), timedelta(hours=4), timedelta(days=1)
    ),
}


def _key_hash(scope: str, key: str) -> str:
    return digest(f"{scope}:{key}")


def paused_until(scope: str, key: str, now: datetime | None = None) -> datetime | None:
    """When the key's pause ends, or None if it may try now."""
    now = now or utcnow()
    row = AuthThrottle.get_or_none(
        (AuthThrottle.scope == scope) & (AuthThrottle.key_hash == _key_hash(scope, key))
    )
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


def fail(scope: str, key: str, now: datetime | None = None) -> datetime | None:
    """Count one failure (inside the caller's write transaction); returns when the pause it
    started ends, or None while the key may still try."""
    now = now or utcnow()
    rule = RULES[scope]
    row = throttle.counter_row(scope, _key_hash(scope, key), now)
    if row.day_start <= now - rule.forget:
        row.day_failures = 0  # a quiet day: the next pause is the first again
    if row.window_start <= now - rule.window:
        row.window_start, row.failures = now, 0
    row.day_start = now
    row.failures += 1
    if row.failures >= rule.free:
        row.day_failures += 1
        row.locked_until = now + rule.pause(row.day_failures)
        row.window_start, row.failures = now, 0
    row.save()
    return paused_until(scope, key, now)


def clear(scope: str, key: str) -> None:
    """Forget a key's failures and pauses."""
    AuthThrottle.delete().where(
        (AuthThrottle.scope == scope) & (AuthThrottle.key_hash == _key_hash(scope, key))
    ).execute()
