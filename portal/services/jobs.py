"""Background work for `flask worker`: deliver the outbox, reconcile payments, repeat."""

import logging
import time
from datetime import UTC, datetime

from ..db import db, write_txn
from ..models import Counter
from . import outbox, payments

log = logging.getLogger(__name__)

# The worker's heartbeat: epoch seconds of its last finished pass, kept as a row of the
# `counter` table (no migration needed) so every web host's readiness check and the back
# office can read it. One small write per pass: an idle worker passes every few seconds.
HEARTBEAT = "worker_heartbeat"


def record_heartbeat(now: float | None = None) -> None:
    """Record that a worker pass has just finished (in its own short transaction)."""
    seconds = int(now if now is not None else time.time())
    with write_txn():
        Counter.insert(name=HEARTBEAT, value=seconds).on_conflict(
            conflict_target=[Counter.name], update={Counter.value: seconds}
        ).execute()


def last_run() -> datetime | None:
    """When any worker last finished a pass (timezone-aware UTC), or None if none ever did."""
    row = Counter.select(Counter.value).where(Counter.name == HEARTBEAT).first()
    return datetime.fromtimestamp(row.value, UTC) if row else None


def run_once() -> int:
    """One pass over every queue; returns how much work was done."""
    db.connect(reuse_if_open=True)
    try:
        done = outbox.deliver_due() + payments.reconcile()
        record_heartbeat()
        return done
    finally:
        db.close()


def run(interval: float = 5.0, once: bool = False) -> None:
    """Loop until stopped; a failing pass is logged and retried, never fatal."""
    while True:
        try:
            done = run_once()
        except Exception:
            log.exception("worker pass failed; retrying")
            done = 0
        if once:
            return
        if not done:
            time.sleep(interval)
