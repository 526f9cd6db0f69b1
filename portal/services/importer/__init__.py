"""CSV import of customers, sites, contacts, invoices, products, customer prices, and the
ERP's sales orders, their lines and their shipments.

The rules every kind follows (docs/design.md "CSV columns"):

- A header row is required. Column names match case-insensitively; an unknown or repeated
  column is an error, a missing optional column is fine.
- Rows upsert by natural key: account number; (account, site code); contact email
  (lower-cased); invoice number; item code; (account, item code).
- A column that is present sets its field on every row, and a blank cell sets the field's
  default (empty text, no site, 0, USD, the yes/no default). A column that is absent leaves
  existing rows as they are. Two exceptions on invoices: a blank `quick_pay_code` keeps the
  invoice's code (a new invoice gets a generated one), and `amount_paid` never lowers what
  is recorded as paid, because the portal may have taken payments the ERP has not posted.
- Every row is checked before anything is written. Each bad row is reported once as
  `line N: reason` (N is the physical line in the file, the header is line 1), and then
  nothing is written at all. A good file is written in one transaction, with one audit entry.
- Rows that would change nothing are not written, so importing a file twice is a no-op.

No kind's file creates what it refers to (a sites file cannot create customers), so
references resolve against the database; a key repeated within one file is an error.
"""

from collections.abc import Callable

from ...db import lift_statement_timeout, utcnow, write_txn
from ...security import hash_code
from .. import audit
from . import hashing
from .base import ABSENT, BATCH, LOOKUP_BATCH, Cells, ImportResult, Kind, Row
from .contacts import Contacts
from .customers import Customers
from .invoices import Invoices
from .order_lines import OrderLines
from .orders import Orders
from .parsers import (
    MAX_CODE_LENGTH,
    MIN_CODE_LENGTH,
    new_code,
    parse_count,
    parse_currency,
    parse_date,
    parse_day_start,
    parse_days,
    parse_email,
    parse_money,
    parse_order_status,
    parse_percent_bp,
    parse_quantity,
    parse_quick_pay_code,
    parse_yes_no,
)
from .prices import Prices
from .products import Products
from .reader import check_rows, read_rows
from .shipments import Shipments
from .sites import Sites

__all__ = [
    "ABSENT",
    "BATCH",
    "KINDS",
    "LOOKUP_BATCH",
    "MAX_CODE_LENGTH",
    "MIN_CODE_LENGTH",
    "PARALLEL_HASH_THRESHOLD",
    "SPECS",
    "Cells",
    "ImportResult",
    "Kind",
    "Row",
    "hash_codes",
    "import_csv",
    "new_code",
    "parse_count",
    "parse_currency",
    "parse_date",
    "parse_day_start",
    "parse_days",
    "parse_email",
    "parse_money",
    "parse_order_status",
    "parse_percent_bp",
    "parse_quantity",
    "parse_quick_pay_code",
    "parse_yes_no",
]

KINDS = (
    "customers",
    "sites",
    "contacts",
    "invoices",
    "products",
    "prices",
    "orders",
    "order_lines",
    "shipments",
)

# Above this many quick-pay codes to hash, hash them in worker processes.
PARALLEL_HASH_THRESHOLD = 2000

SPECS: dict[str, Kind] = {
    spec.name: spec
    for spec in (
        Customers(),
        Sites(),
        Contacts(),
        Invoices(),
        Products(),
        Prices(),
        Orders(),
        OrderLines(),
        Shipments(),
    )
}


def hash_codes(codes: list[str], meanwhile: Callable = lambda: None) -> tuple[list, object]:
    """argon2id hashes of quick-pay codes, in order, and what `meanwhile()` returned.

    Above PARALLEL_HASH_THRESHOLD codes they are hashed in worker processes that die with
    this one (`hashing`), while `meanwhile` runs here.
    """
    if len(codes) <= PARALLEL_HASH_THRESHOLD:
        return [hash_code(code) for code in codes], meanwhile()
    return hashing.hash_in_processes(codes, meanwhile)


def import_csv(kind: str, fh) -> ImportResult:
    """Upsert one kind of record from a CSV file: every row is written, or none is.

    `fh` is a text or binary file object. Errors come back as `line N: reason` strings in
    `ImportResult.errors` (never raised), so the command line and the back office can
    show them as they are.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    spec = SPECS[kind]
    result = ImportResult(kind)
    problems: list[tuple[int, str]] = []
    rows = read_rows(spec, fh, problems)
    if rows:
        # Check the references even when some rows are bad: report everything at once.
        state = spec.fetch(rows)
        check_rows(spec, rows, state, problems)
    if problems or not rows:
        result.errors = [f"line {line}: {reason}" for line, reason in sorted(problems)]
        return result

    prepared = spec.prepare(rows, state, hash_codes)
    now = utcnow()
    with write_txn():
        # Bounded by the file, not the clock: a web request's statement timeout would cancel
        # a big upload's commit (its lock timeout still holds).
        lift_statement_timeout()
        # Fetch again under the write lock: this is the state the rows are written against.
        state = spec.fetch(rows, lock=True)
        check_rows(spec, rows, state, problems)
        if problems:
            result.errors = [f"line {line}: {reason}" for line, reason in sorted(problems)]
            return result
        result.created, result.updated = spec.write(rows, state, prepared, now)
        result.unchanged = len(rows) - result.created - result.updated
        if result.created or result.updated:
            audit.record(f"import.{kind}", None, created=result.created, updated=result.updated)
    return result
