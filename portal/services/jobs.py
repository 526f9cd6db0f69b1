"""Background work for `flask worker`: two loops that never wait for each other.

- the **mail** loop delivers the outbox (`outbox.deliver_due`);
- the **money** loop runs `MONEY_TASKS` (payment reconciliation, and scheduled jobs).

Each loop runs in a thread of its own with its own database connection and heartbeat, so a
hung SMTP relay (each step bounded by `MAIL_TIMEOUT_SECONDS`) delays only mail, and a slow
payment provider delays only money. To add a money-side job, write a function that does one
pass and returns how much it did, and add it to `MONEY_TASKS`.
"""

import logging
import threading
import time
from datetime import UTC, datetime

from flask import current_app

from ..db import db, write_txn
from ..models import Counter
from . import alerts, autopay, importer, outbox, payments, reminders, statement_mail

log = logging.getLogger(__name__)

# The money side: each task does one pass and returns how much it did. One line per job.
MONEY_TASKS = [
    payments.reconcile,
    autopay.run_due,  # after reconciliation: a charge's late outcome is known first
    statement_mail.run_due,  # the month's statements by email, on the statement day
    reminders.run_due,  # payment reminders on their schedule (after autopay has charged)
    alerts.send_digests,  # each staff login's daily summary of its alerts, once a day
    importer.finish_pending,  # a killed import's staged changes, applied where it stopped
]

# The worker's heartbeats: epoch seconds of each loop's last finished pass, kept as rows of
# the `counter` table (no migration needed) so every web host's readiness check and the back
# office can read them. One small write per pass: an idle loop passes every few seconds.
HEARTBEAT = "worker_heartbeat"  # the money loop (and the name `last_run` reads first)
HEARTBEATS = {"money": HEARTBEAT, "mail": HEARTBEAT + ":mail"}


def record_heartbeat(now: float | None = None, loop: str = "money") -> None:
    """Record that a pass of `loop` has just finished (in its own short transaction)."""
    seconds = int(now if now is not None else time.time())
    with write_txn():
        Counter.insert(name=HEARTBEATS[loop], value=seconds).on_conflict(
            conflict_target=[Counter.name], update={Counter.value: seconds}
        ).execute()


def last_run() -> datetime | None:
    """When the worker last finished a pass of every loop it runs: the older of the loops'
    heartbeats (timezone-aware UTC), or None if none ever did."""
    rows = Counter.select(Counter.value).where(Counter.name.in_(list(HEARTBEATS.values())))
    values = [row.value for row in rows]
    return datetime.fromtimestamp(min(values), UTC) if values else None


def money_pass() -> int:
    """One pass over the money side; a failing task is logged and the others still run."""
    done = 0
    for task in MONEY_TASKS:
        try:
            done += task() or 0
        except Exception:
            log.exception("worker: %s failed; it runs again next pass", task.__name__)
    return done


def mail_pass() -> int:
    """One pass over the outbox."""
    return outbox.deliver_due()


LOOPS = {"mail": mail_pass, "money": money_pass}


def run_pass(loop: str) -> int:
    """One pass of `loop` on this thread's own connection, then its heartbeat."""
    db.connect(reuse_if_open=True)
    try:
        done = LOOPS[loop]()
        record_heartbeat(loop=loop)
        return done
    finally:
        if not db.is_closed():
            db.close()


def run_once() -> int:
    """One pass of every loop, one after the other (`flask worker --once`)."""
    return sum(run_pass(loop) for loop in LOOPS)


def _loop(app, loop: str, interval: float, stop: threading.Event) -> None:
    with app.app_context():
        while not stop.is_set():
            try:
                done = run_pass(loop)
            except Exception:  # a database hiccup must not stop the loop
                log.exception("worker: %s pass failed; retrying", loop)
                done = 0
            if not done:
                stop.wait(interval)


def run(interval: float = 5.0, once: bool = False, stop: threading.Event | None = None) -> None:
    """Run every loop in a thread of its own until stopped (or one pass each with `once`).
    Exits if a loop's thread ever ends, so the process supervisor restarts the worker."""
    if once:
        try:
            run_once()
        except Exception:
            log.exception("worker pass failed")
        return
    stop = stop or threading.Event()
    app = current_app._get_current_object()
    threads = [
        threading.Thread(
            target=_loop, args=(app, loop, interval, stop), name=f"worker-{loop}", daemon=True
        )
        for loop in LOOPS
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop.is_set():
            if not all(thread.is_alive() for thread in threads):
                raise RuntimeError("a worker loop stopped")
            stop.wait(1.0)
    finally:
        stop.set()
