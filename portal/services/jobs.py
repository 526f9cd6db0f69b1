"""Background work for `flask worker`: deliver the outbox, reconcile payments, repeat."""

import logging
import time

from ..db import db
from . import outbox, payments

log = logging.getLogger(__name__)


def run_once() -> int:
    """One pass over every queue; returns how much work was done."""
    db.connect(reuse_if_open=True)
    try:
        return outbox.deliver_due() + payments.reconcile()
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
