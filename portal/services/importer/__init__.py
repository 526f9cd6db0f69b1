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
  nothing is written at all. A good file is accepted in one transaction, with one audit
  entry: its new rows written, and (invoices) its changes to stored rows staged and then
  applied in short transactions, so no payer waits for the whole file (`staging`: a change
  a payment made meanwhile no longer allows is skipped and reported, not applied).
- Rows that would change nothing are not written, so importing a file twice is a no-op.

No kind's file creates what it refers to (a sites file cannot create customers), so
references resolve against the database; a key repeated within one file is an error.
"""

import pickle
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from functools import partial

from peewee import Entity

from ...db import db, is_sqlite, lift_statement_timeout, utcnow, write_txn
from ...security import hash_code
from .. import audit
from . import hashing, staging
from .base import (
    ABSENT,
    BATCH,
    LOOKUP_BATCH,
    Cells,
    ImportResult,
    Kind,
    Row,
    bulk_billing,
    copies_overlapped,
    raise_versions,
    references_kept,
    tables_written,
)
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
from .reader import check_rows, read_chunks
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
    "finish_pending",
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


def hash_codes(
    codes: list[str], meanwhile: Callable = lambda: None, pool: hashing.Pool | None = None
) -> tuple[list, object]:
    """argon2id hashes of quick-pay codes, in order, and what `meanwhile()` returned.

    Above PARALLEL_HASH_THRESHOLD codes they are hashed in worker processes that die with
    this one (`hashing`; the import's `pool`, kept from chunk to chunk), while `meanwhile`
    runs here.
    """
    if len(codes) <= PARALLEL_HASH_THRESHOLD:
        return [hash_code(code) for code in codes], meanwhile()
    if pool is not None:
        return pool.hash(codes, meanwhile)
    return hashing.hash_in_processes(codes, meanwhile)


# Rows read, checked and written at a time: what an import holds in memory, whatever the size
# of its file.
CHUNK_ROWS = 5_000


class _Refused(Exception):
    """A row failed its check under the write lock: the transaction rolls back."""


def finish_pending() -> int:
    """Apply what killed imports left staged (a worker's money task; `staging`)."""
    return staging.finish_pending(SPECS)


def import_csv(kind: str, fh) -> ImportResult:
    """Upsert one kind of record from a CSV file: the file is accepted whole, or refused.

    `fh` is a text or binary file object. Errors come back as `line N: reason` strings in
    `ImportResult.errors` (never raised), so the command line and the back office can
    show them as they are.

    The file is read once, CHUNK_ROWS rows at a time, and written in a second pass over what
    the first spilled to a temporary file, so memory stays flat however big it is (a million
    invoices in about the memory of five thousand, plus one key per row to find repeated
    keys):

    1. read, parse and check every row against the database, outside any transaction, and
       do the slow work (hashing quick-pay codes) for each chunk, spilling the checked rows
       and that work to the temporary file (for invoices, also each row's judgement: new,
       changing or unchanged); every bad row is reported and nothing is written;
    2. in one write transaction (`_write`), read the spill back chunk by chunk (not the
       file: parsing it again cost about 15 % of the time) and write it: a kind that is not
       selective checks each chunk again under lock (the database may have moved) and
       upserts it; for invoices, new rows are checked against their customer and site and
       written, and the rows that change a stored invoice are *staged* (checked again when
       applied); a row the file repeats unchanged is neither, so its payer never waits.
       Customers and sites are fetched once per pass (`references_kept`). The new rows'
       customers' billing versions are locked and raised once, after the last chunk (on
       PostgreSQL the per-row trigger stands aside and queues nothing, 0039 and 0042);
    3. after the commit, the staged changes are applied APPLY_ROWS at a time, each piece
       locked, checked and written in a short transaction of its own (`staging`): a payer
       of a changed invoice waits for one piece, never for the file. If this process dies
       meanwhile, the worker applies the rest.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    try:  # an earlier import's changes, before this file is judged
        staging.wait_for(None, SPECS)
    except staging.ImportBehind:
        return ImportResult(kind, errors=[BEHIND])
    spec = SPECS[kind]
    result = ImportResult(kind)
    problems: list[tuple[int, str]] = []
    with ExitStack() as stack:
        pool = stack.enter_context(hashing.Pool())
        spill = stack.enter_context(tempfile.TemporaryFile())
        # A selective kind's rows as the first pass judged them: only the new and changing
        # ones, so a write that trusts that judgement reads back only what it writes.
        judged = stack.enter_context(tempfile.TemporaryFile())
        written = stack.enter_context(tables_written())
        slow = partial(hash_codes, pool=pool)
        keep = nullcontext if spec.writes_references else references_kept
        count = 0
        seen = staging.generation()  # what this pass judges against (`_write`)
        with keep():
            for rows in read_chunks(spec, fh, problems, CHUNK_ROWS):
                # Check the references even when some rows are bad: report them all at once.
                state = spec.fetch(rows)
                check_rows(spec, rows, state, problems)
                if not problems:
                    prepared = spec.prepare(rows, state, slow)
                    pickle.dump((rows, prepared), spill)
                    if spec.selective:
                        new, changing = _split(spec, rows, state, prepared)
                        pickle.dump((new, changing, prepared), judged)
                count += len(rows)
        pool.close()
        if problems or not count:
            result.errors = _errors(problems)
            return result

        # The first pass's judgement, while no other import came in between (`_write`).
        trust = seen if spec.selective else None
        for _ in range(BEHIND_RETRIES):
            try:
                run_id = _write(spec, spill, judged, result, keep, problems, trust)
                break
            except staging.ImportBehind:  # an earlier import's changes first, then again
                trust = None
                try:
                    staging.wait_for(None, SPECS)
                except staging.ImportBehind:
                    result.errors = [BEHIND]
                    return result
            except Exception as error:
                if trust is None or not _is_integrity_error(error):
                    raise
                trust = None  # someone else stored one of the "new" rows meanwhile
        else:
            result.errors = [BEHIND]
            return result
        if problems:
            result.created = result.updated = result.staged = 0
            result.errors = _errors(problems)
            return result
    if result.created + result.staged >= ANALYZE_AFTER and not is_sqlite():
        _analyze(written)
    if run_id is not None:
        run = staging.wait_for(run_id, SPECS)
        result.created, result.updated = run.created, run.updated
        result.skipped = run.skipped_lines
        result.applying = run.state != "done"
    if result.applying:  # so far: the rows neither new nor staged
        result.unchanged = count - result.created - result.staged
    else:
        result.unchanged = count - result.created - result.updated - len(result.skipped)
    return result


# Times an import starts its write again after finding an earlier import still applying.
BEHIND_RETRIES = 5
BEHIND = (
    "an earlier import is still applying its changes; nothing was imported: "
    "import this file again in a minute"
)


def _write(spec: Kind, spill, judged, result: ImportResult, keep, problems, trust=None):
    """The import's one write transaction: the new rows written and the changing rows
    staged (`staging`); returns the run that applies them, or None when nothing changes.
    A row refused under the lock leaves `problems` filled and nothing written.

    `trust` is the import generation the first pass read (`staging.generation`). While
    it still holds, the first pass's judgement of each row (new, changing, unchanged:
    `_split`, kept in `judged`) is used as it is, so this transaction looks nothing up
    again and reads back only the rows it writes: a million lookups less, 20 s of a
    1M-row import, and on SQLite, where this transaction keeps every other writer
    waiting, that wait at 100,000 rows went from 3 s to a fraction of one. Rows judged new
    that someone stored meanwhile fail their unique key, and rows judged changing are
    checked again when they are applied; a row judged unchanged that a person edited in
    between keeps that edit until the next file. With `trust` None (another import came
    in between, or a unique key refused), every row is looked up and judged again here."""
    spill.seek(0)
    judged.seek(0)
    now = utcnow()
    result.created = result.updated = result.staged = 0
    problems.clear()  # the first pass found none, or this is not reached
    try:
        with write_txn(), keep(), copies_overlapped():
            staging.hold_import_lock()
            if trust is not None and staging.generation() != trust:
                raise staging.ImportBehind  # judged against what another import changed
            # Bounded by the file, not the clock: a web request's statement timeout
            # would cancel a big upload's commit (its lock timeout still holds).
            lift_statement_timeout()
            bulk_billing()  # the touched customers' versions go up once, below
            if not is_sqlite():
                # The trigram GIN indexes (0029, 0041) answer `=` too, and with no
                # statistics for rows this transaction inserts the planner picks them
                # for the key lookups; a GIN scan reads the pending list of every row
                # inserted so far, so each chunk got slower (10 s a lookup at 200,000
                # rows of a 1M import). GIN is read only by bitmap scans: without them
                # the lookups use the unique btree indexes.
                db.execute_sql("SET LOCAL enable_bitmapscan = off")
            touched: set[int] = set()
            stager = staging.Stager(spec)

            def write(rows, prepared, state=None):
                if not rows:
                    return
                # Fetched again under the write lock: what the rows are written against.
                if state is None:
                    state = spec.fetch(rows, lock=True)
                check_rows(spec, rows, state, problems)
                if problems:
                    raise _Refused
                state["touched"] = touched
                created, updated = spec.write(rows, state, prepared, now)
                result.created += created
                result.updated += updated

            # Rows that change a stored one are staged, and applied after the commit in
            # short transactions of their own (`staging`): what a payer of such an invoice
            # waits for is one of those, not this transaction. A row the file repeats
            # unchanged is neither. New rows are written now: nobody else sees them before
            # the commit, so nobody waits for them; each is written against what this
            # transaction read (one inserted meanwhile by someone else fails the unique
            # key either way).
            if spec.selective and trust is not None:  # as the first pass judged them
                for new, changing, prepared in _spilled(judged):
                    stager.add(changing, prepared)
                    write(new, prepared, spec.references(new))
            elif spec.selective:  # looked up and judged again
                for rows, prepared in _spilled(spill):
                    found = spec.fetch(rows)
                    new, changing = _split(spec, rows, found, prepared)
                    stager.add(changing, prepared)
                    write(new, prepared, found)
            else:
                for rows, prepared in _spilled(spill):
                    write(rows, prepared)
            raise_versions(touched)
            run = stager.close(result.created)
            result.staged = stager.staged
            if result.created or result.updated or result.staged:
                staging.next_generation()
                audit.record(
                    f"import.{spec.name}",
                    run,
                    created=result.created,
                    updated=result.updated + result.staged,
                )
    except _Refused:
        return None
    return run.id if run is not None else None


# Rows an import writes before it refreshes the planner's statistics of what it wrote.
ANALYZE_AFTER = 10_000


def _analyze(tables: set[str]) -> None:
    """ANALYZE the tables a big import wrote, as PostgreSQL advises after a bulk load.
    Until autovacuum gets to them, the planner judges the tables by what they held before:
    a second 100,000-row import right after a first took 135 s instead of 10, its key
    lookups planned as scans of a table thought empty; customer pages plan on the same
    figures. A sample of 30,000 rows per table: under a second at a million invoices."""
    for table in sorted(tables):
        # The table's name quoted by Peewee as an identifier (G4: no SQL from strings).
        db.execute_sql(*db.get_sql_context().literal("ANALYZE ").sql(Entity(table)).query())


def _spilled(spill):
    """The chunks the first pass checked, as it left them: read back, not parsed again."""
    while True:
        try:
            yield pickle.load(spill)
        except EOFError:
            return


def _split(spec: Kind, rows, state: dict, prepared) -> tuple[list, list]:
    """A selective kind's rows that would insert and those that would change a stored one,
    judged against `state` (what `fetch` read)."""
    new, changing = [], []
    for row in spec.moving(rows, state, prepared):
        (changing if row.key in state["existing"] else new).append(row)
    return new, changing


def _is_integrity_error(error: Exception) -> bool:
    """peewee's IntegrityError, or the driver's own (COPY raises psycopg2's directly)."""
    return any(kind.__name__ == "IntegrityError" for kind in type(error).__mro__)


def _errors(problems: list[tuple[int, str]]) -> list[str]:
    return [f"line {line}: {reason}" for line, reason in sorted(problems)]
