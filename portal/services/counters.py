"""Named sequences for human-facing numbers (receipts, cases, RFQs), safe under concurrency."""

from ..models import Counter


def next_value(name: str) -> int:
    """The next number of a sequence; call inside the caller's `write_txn()`.

    The UPDATE takes the row lock on PostgreSQL (the IMMEDIATE transaction already holds the
    write lock on SQLite), so two transactions never get the same number.
    """
    Counter.insert(name=name, value=0).on_conflict_ignore().execute()
    Counter.update(value=Counter.value + 1).where(Counter.name == name).execute()
    return Counter.get_by_id(name).value


def next_number(name: str, prefix: str, width: int = 6) -> str:
    """A formatted number such as `R-000042`."""
    return f"{prefix}-{next_value(name):0{width}d}"
