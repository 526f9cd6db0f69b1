"""Staged changes: how an import applies the rows that change stored ones (issue 15).

An import's file is accepted or refused whole: every row is checked first, and the new rows
are written, and the changing rows *staged*, in one transaction (`import_csv`). The staged
rows are then applied here, APPLY_ROWS at a time, each piece in a short transaction of its
own that locks, checks again and writes only its rows, and deletes the piece. So a payer of
an invoice the file changes waits for one piece (about 100 ms on PostgreSQL), not for the
whole file (16 s for 142,857 changes when they were written in the import's transaction).

What that costs, and the rules that keep it safe:

- **Nothing is half-done for long, nothing is lost.** A run is `applying` until its last
  piece is applied. If the process dies between pieces, the worker's next pass (every few
  seconds, `jobs.MONEY_TASKS`) or the next import applies the rest: staged rows are in the
  database, not in the dead process.
- **Each piece once.** A piece is deleted in the transaction that applies it, and taken
  with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two hosts' workers split the pieces and
  never apply one twice (SQLite has one writer at a time). Within a run the keys are unique,
  so the order of its pieces does not matter.
- **Imports stay in file order.** A new import writes nothing while an earlier run is
  applying: its write transaction checks, under a lock, that none is, and otherwise rolls
  back, applies the earlier run and starts again (`ImportBehind`).
- **A conflict skips the row, not the file.** A piece checks its rows again under lock; a
  row the database no longer accepts (a payment came in that the new total does not cover,
  the invoice moved to another account) is not applied and is reported as `line N: reason`
  in the run, the import's result and the audit log. The portal's record of money taken
  wins over the ERP's older picture; the next file from the ERP brings them back together.
- Between pieces a reader can see some of a file's changes and not yet others, for the few
  seconds the pieces take; each invoice is always whole and consistent.

Rows are kept as JSON with two tags (dates, and `ABSENT` for a column the file lacks); a
kind turns its rows and prepared work into that form (`Kind.to_stage`, `Kind.from_stage`),
never with a quick-pay code in clear.
"""

import json
import logging
import time
from datetime import date, datetime

from peewee import fn

from ...db import db, is_sqlite, utcnow, write_txn
from ...models import Counter
from ...models_imports import ImportChange, ImportRun
from .. import audit
from .base import ABSENT, Kind, Row, bulk_billing, raise_versions, references_kept
from .reader import check_rows

log = logging.getLogger(__name__)

# Rows applied per transaction: what a payer of a changed invoice may wait for (about 100 ms
# on PostgreSQL at a million invoices).
APPLY_ROWS = 500

# pg_advisory_xact_lock key of an import's write transaction: any fixed number, the same on
# every host (the migrations' lock is another).
IMPORT_LOCK = 7_307_015


class ImportBehind(Exception):
    """An earlier import is still applying its changes: apply them, then write again."""


# --- rows as JSON -------------------------------------------------------------------------


def _tagged(value):
    if value is ABSENT:
        return {"$": "absent"}
    if isinstance(value, date) and not isinstance(value, datetime):
        return {"$": "date", "v": value.isoformat()}
    raise TypeError(f"an import cannot stage a {type(value).__name__}")


def _untagged(obj: dict):
    tag = obj.get("$")
    if tag == "absent":
        return ABSENT
    if tag == "date":
        return date.fromisoformat(obj["v"])
    return obj


def dumps(data) -> str:
    return json.dumps(data, default=_tagged, separators=(",", ":"))


def loads(text: str):
    return json.loads(text, object_hook=_untagged)


# --- an import's side ---------------------------------------------------------------------


def hold_import_lock() -> None:
    """Inside an import's write transaction: wait for any other import's to end, then refuse
    to go on while an earlier run is still applying (`ImportBehind`)."""
    if not is_sqlite():  # SQLite's IMMEDIATE transaction already runs one writer at a time
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
    if ImportRun.select().where(ImportRun.state == "applying").exists():
        raise ImportBehind


# The import generation: a counter each import's write transaction raises, so an import can
# tell whether another one was accepted since it judged its rows (`import_csv`).
GENERATION = "import_generation"


def generation() -> int:
    return Counter.select(Counter.value).where(Counter.name == GENERATION).scalar() or 0


def next_generation() -> None:
    """Inside the import's write transaction, under its lock."""
    Counter.insert(name=GENERATION, value=1).on_conflict(
        conflict_target=[Counter.name], update={Counter.value: Counter.value + 1}
    ).execute()


class Stager:
    """Inside an import's write transaction: keeps the rows that change stored ones in a run
    of their own, APPLY_ROWS a piece whatever the chunks they came in (a chunk of 5,000
    rows with 714 changes made a piece of 500 and one of 214)."""

    def __init__(self, spec: Kind):
        self.spec = spec
        self.run: ImportRun | None = None
        self.staged = 0
        self._rows: list[Row] = []
        self._prepared: dict = {}

    def add(self, rows: list[Row], prepared: dict | None) -> None:
        self._rows.extend(rows)
        if prepared:
            self._prepared.update((r.key, prepared[r.key]) for r in rows if r.key in prepared)
        self.staged += len(rows)
        while len(self._rows) >= APPLY_ROWS:
            self._flush(APPLY_ROWS)

    def close(self, created: int) -> ImportRun | None:
        """Stage what is left; the run (with the file's new rows counted), or None."""
        if self._rows:
            self._flush(len(self._rows))
        if self.run is not None:
            self.run.created, self.run.staged = created, self.staged
            self.run.save()
        return self.run

    def _flush(self, count: int) -> None:
        if self.run is None:
            self.run = ImportRun.create(kind=self.spec.name)
        piece, self._rows = self._rows[:count], self._rows[count:]
        prepared = {r.key: self._prepared.pop(r.key) for r in piece if r.key in self._prepared}
        data = dumps(self.spec.to_stage(piece, prepared))
        ImportChange.insert(run=self.run.id, rows=data).execute()


# --- applying -----------------------------------------------------------------------------


def finish_pending(specs: dict[str, Kind]) -> int:
    """Apply every staged piece of every run still applying, a piece per transaction, and
    close the runs left with none; returns the pieces applied (a worker's money task).

    A piece that meets a lock conflict (a deadlock with a payer locking the same invoices in
    another order, a lock wait that ran out, SQLite busy) rolls back and is tried again, up
    to LOCK_RETRIES times in a pass; then the pass stops with the error, and the worker's
    next pass (or `wait_for`, or the next import) takes it up. Any other error sets the
    piece aside (`_apply_next`), so no piece can stop the runs after it."""
    applied = conflicts = 0
    # Customers and sites fetched once for all the pieces, not once a piece (7 of 44 s for
    # 142,857 changes); one removed meanwhile fails its foreign key, as in an import.
    with references_kept():
        # Looked for first without the write lock: an idle worker asks every few seconds.
        while ImportChange.select().exists():
            try:
                if not _apply_next(specs):
                    break
            except Exception as error:
                conflicts += 1
                if not _lock_conflict(error) or conflicts > LOCK_RETRIES:
                    raise
                log.warning("import: a piece met a lock conflict (%s); again", error)
                time.sleep(0.05 * conflicts)
                continue
            applied += 1
    _close_finished()
    return applied


# Tries of a piece that met a lock conflict, in one pass.
LOCK_RETRIES = 3


# PostgreSQL's "try again" errors: deadlock_detected, serialization_failure,
# lock_not_available (a lock_timeout).
_RETRY_CODES = {"40P01", "40001", "55P03"}


def _lock_conflict(error: Exception) -> bool:
    """True for a lock conflict, worth trying again: a deadlock, a lock wait that ran out,
    SQLite busy or locked. Not for other errors of the same class (a disk full, a query
    cancelled, a bad statement), which would fail again every time. psycopg2 raises a
    deadlock as itself; peewee wraps the rest, keeping the driver's error first in args."""
    for candidate in (error, *error.args[:1]):
        if getattr(candidate, "pgcode", None) in _RETRY_CODES:
            return True
        if type(candidate).__name__ == "OperationalError" and (
            "locked" in str(candidate) or "busy" in str(candidate)
        ):
            return True
    return False


def applying() -> list[ImportRun]:
    """The runs whose changes are still being applied, oldest first (the staff home)."""
    return list(ImportRun.select().where(ImportRun.state == "applying").order_by(ImportRun.id))


# Seconds an import waits for its own run (or an earlier one) to be applied when another
# process holds pieces or a payer holds locks, before it leaves the rest to the worker.
PATIENCE = 60.0


def wait_for(run_id: int | None, specs: dict[str, Kind], patience: float | None = None):
    """Apply the staged pieces (with whoever else is applying them) until run `run_id` is
    done, or, with None, until no run is applying; give up after `patience` seconds with
    the run as it stands (the worker finishes it). Returns the run (None with None)."""
    deadline = time.monotonic() + (PATIENCE if patience is None else patience)
    while True:
        try:
            finish_pending(specs)
        except Exception as error:  # a lock held long by a payer: wait for it, as it would
            if not _lock_conflict(error):
                raise
        if run_id is None:
            if not applying():
                return None
        else:
            run = ImportRun.get_by_id(run_id)
            if run.state == "done":
                return run
        if time.monotonic() > deadline:
            if run_id is None:
                raise ImportBehind
            return run
        time.sleep(0.05)  # another host holds a piece: done within one piece's time


def _apply_next(specs: dict[str, Kind]) -> bool:
    """Apply the oldest piece nobody else is applying; False when there is none."""
    with write_txn():
        query = ImportChange.select().order_by(ImportChange.id).limit(1)
        if not is_sqlite():
            query = query.for_update(skip_locked=True)
        piece = query.first()
        if piece is None:
            return False
        run = ImportRun.get_by_id(piece.run_id)
        try:
            # A savepoint: a piece that cannot be written (a bug, a row the database refuses
            # for a reason the checks do not know) is set aside with its lines reported, so
            # it can never hold up every later import.
            with db.atomic():
                created, updated, refused = _apply(piece, specs[run.kind])
        except Exception as error:
            if _lock_conflict(error):
                raise
            log.exception("import: a staged piece of run %s could not be applied", run.id)
            created = updated = 0
            refused = [f"{where}: not applied ({type(error).__name__})" for where in _lines(piece)]
        piece.delete_instance()
        changes = {
            ImportRun.created: ImportRun.created + created,
            ImportRun.updated: ImportRun.updated + updated,
        }
        if refused:
            changes[ImportRun.skipped] = ImportRun.skipped.concat(
                "".join(f"{line}\n" for line in refused)
            )
        ImportRun.update(changes).where(ImportRun.id == run.id).execute()
    return True


def _apply(piece: ImportChange, spec: Kind) -> tuple[int, int, list[str]]:
    """Lock, check and write one piece's rows: (created, updated, refused lines)."""
    rows, prepared = spec.from_stage(loads(piece.rows))
    bulk_billing()  # as in the import's own transaction
    # Locked and checked again: what the piece is written against.
    state = spec.fetch(rows, lock=True)
    problems: list[tuple[int, str]] = []
    check_rows(spec, rows, state, problems)
    refused = {line for line, _ in problems}
    touched: set[int] = set()
    state["touched"] = touched
    # A row whose stored one went meanwhile is written as new: the file says it exists.
    good = [row for row in rows if row.line not in refused]
    created, updated = spec.write(good, state, prepared, utcnow())
    raise_versions(touched)
    return created, updated, [f"line {line}: {reason}" for line, reason in problems]


def _lines(piece: ImportChange) -> list[str]:
    """ "line N" for each row of a piece, or what the piece holds if it cannot be read."""
    try:
        return [f"line {row[0]}" for row in loads(piece.rows)["rows"]]
    except Exception:
        return [f"a staged piece (#{piece.id})"]


def _close_finished() -> None:
    """Mark done the applying runs with no piece left, and audit what each skipped."""
    left = ImportChange.select().where(ImportChange.run == ImportRun.id)
    for run in ImportRun.select().where((ImportRun.state == "applying") & ~fn.EXISTS(left)):
        with write_txn():
            closed = (
                ImportRun.update(state="done", finished_at=utcnow())
                .where((ImportRun.id == run.id) & (ImportRun.state == "applying"))
                .execute()
            )
            if not closed:  # another process closed it
                continue
            # What the run changed is all in now: an import that judged its rows before
            # this must judge them again (`import_csv`).
            next_generation()
            run = ImportRun.get_by_id(run.id)
            if run.skipped:
                audit.record(
                    f"import.{run.kind}.skipped",
                    run,
                    updated=run.updated,
                    skipped=run.skipped_lines,
                )
