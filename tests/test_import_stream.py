"""Streamed imports (issue 15): a file is read and written a chunk at a time, and stays all
or nothing across chunks."""

import io
import threading

import pytest
from peewee import OperationalError

from portal.db import db, write_txn
from portal.models import AuditLog, Customer, Invoice
from portal.services import importer
from portal.services.importer.invoices import Invoices

from . import factories

HEADER = "number,account_number,issue_date,due_date,total\n"


def invoices(count: int, start: int = 0, total: str = "10.00") -> str:
    return HEADER + "".join(
        f"S{n:04d},ACME01,2026-01-05,2026-02-04,{total}\n" for n in range(start, start + count)
    )


@pytest.fixture
def acme(app):
    return factories.customer(account_number="ACME01")


@pytest.fixture
def small_chunks(monkeypatch):
    """Three rows per chunk, so a file of ten rows is four chunks."""
    monkeypatch.setattr(importer, "CHUNK_ROWS", 3)


class OneWayOnly(io.RawIOBase):
    """A stream that cannot seek (a pipe): the import reads it once."""

    def __init__(self, data: bytes):
        self.source = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self.source.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_file_of_many_chunks_is_written_whole(acme, small_chunks):
    result = importer.import_csv("invoices", io.StringIO(invoices(10)))
    assert (result.created, result.updated, result.unchanged) == (10, 0, 0), result.errors
    assert Invoice.select().count() == 10
    assert AuditLog.select().where(AuditLog.action == "import.invoices").count() == 1
    again = importer.import_csv(
        "invoices",
        io.StringIO(invoices(4, total="12.00") + "S0009,ACME01,2026-01-05,2026-02-04,10.00\n"),
    )
    assert (again.created, again.updated, again.unchanged) == (0, 4, 1)


def test_bad_rows_in_any_chunk_are_all_reported_and_nothing_is_written(acme, small_chunks):
    text = (
        invoices(10)
        + "S0002,ACME01,2026-01-05,2026-02-04,1.00\nS9999,NOPE,2026-01-05,2026-02-04,1.00\n"
    )
    result = importer.import_csv("invoices", io.StringIO(text))
    assert result.errors == [
        "line 12: invoice number S0002 appears again (first on line 4)",
        "line 13: unknown account_number NOPE",
    ]
    assert Invoice.select().count() == 0


def test_a_row_refused_under_the_lock_in_a_later_chunk_undoes_the_earlier_chunks(
    acme,
    small_chunks,
    monkeypatch,
):
    """The database moved between the check and the write (another import, a payment):
    the row that no longer passes is reported, and the chunks already written roll back."""
    check = Invoices.check

    def moved(self, row, state):
        problems = check(self, row, state)
        if state.get("writing") and row.key == "S0008":
            problems.append("something changed meanwhile")
        return problems

    fetch = Invoices.fetch

    def marked(self, rows, lock=False):
        state = fetch(self, rows, lock)
        state["writing"] = db.in_transaction()  # read inside the write transaction
        return state

    references = Invoices.references

    def marked_references(self, rows):  # what the write reads for rows known to be new
        return {**references(self, rows), "writing": db.in_transaction()}

    monkeypatch.setattr(Invoices, "check", moved)
    monkeypatch.setattr(Invoices, "fetch", marked)
    monkeypatch.setattr(Invoices, "references", marked_references)
    versions = {c.id: c.billing_version for c in Customer.select()}
    result = importer.import_csv("invoices", io.StringIO(invoices(10)))
    assert result.errors == ["line 10: something changed meanwhile"]
    assert (result.created, result.updated) == (0, 0)
    assert Invoice.select().count() == 0
    assert {c.id: c.billing_version for c in Customer.select()} == versions
    assert not AuditLog.select().where(AuditLog.action == "import.invoices").exists()


def test_new_rows_someone_else_stored_meanwhile_are_looked_up_after_all(
    acme, small_chunks, monkeypatch
):
    """The first pass found S0000..S0005 new, so the write does not look them up again; if
    another writer stored one of them meanwhile, its unique key refuses that write, and
    the import writes again, looking every row up: S0004 is then a change, not an error."""
    write = importer._write
    calls = []

    def meanwhile(*args):
        if not calls:
            with write_txn():
                factories.invoice(acme, number="S0004", total_cents=500)
        calls.append(args[-1])  # trust
        return write(*args)

    monkeypatch.setattr(importer, "_write", meanwhile)
    result = importer.import_csv("invoices", io.StringIO(invoices(6)))
    assert calls[0] is not None and calls[1:] == [None]  # trusted, then looked up
    assert (result.created, result.updated, result.errors) == (5, 1, [])
    assert {i.number: i.total_cents for i in Invoice.select()}["S0004"] == 1_000


def test_an_import_accepted_between_the_check_and_the_write_makes_the_rows_judged_again(
    acme, monkeypatch
):
    """The write trusts the first pass's judgement of each row only while no other import
    was accepted since. Here the file repeats S0000 at 10.00, as stored when it was read;
    then another import raises it to 12.00. The file came later, so S0000 goes back to
    10.00: judged again, it is a change, not a row to leave alone."""
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    write = importer._write
    calls = []

    def meanwhile(*args):
        if not calls:
            monkeypatch.setattr(importer, "_write", write)
            other = importer.import_csv("invoices", io.StringIO(invoices(1, total="12.00")))
            assert other.updated == 1
            monkeypatch.setattr(importer, "_write", meanwhile)
        calls.append(args[-1])
        return write(*args)

    monkeypatch.setattr(importer, "_write", meanwhile)
    result = importer.import_csv("invoices", io.StringIO(invoices(2)))
    assert calls[0] is not None and calls[1:] == [None]
    assert (result.updated, result.unchanged) == (1, 1)
    assert {i.number: i.total_cents for i in Invoice.select()} == {"S0000": 1_000, "S0001": 1_000}


def test_a_stream_that_cannot_seek_is_read_once_and_written_from_the_spill(acme, small_chunks):
    stream = io.BufferedReader(OneWayOnly(invoices(7).encode()))
    assert not stream.seekable()
    result = importer.import_csv("invoices", stream)
    assert result.created == 7, result.errors
    assert sorted(i.number for i in Invoice.select()) == [f"S{n:04d}" for n in range(7)]


def test_new_invoices_are_written_first_and_changes_at_the_end(acme, small_chunks, monkeypatch):
    """Issue 15: a changed invoice is what a payer can be waiting for, so the import writes
    every new row in its transaction and the changes only after it (staged, then applied in
    short transactions of their own); the file's order does not matter."""
    importer.import_csv("invoices", io.StringIO(invoices(4)))  # S0000..S0003
    mixed = HEADER + "".join(
        f"S{n:04d},ACME01,2026-01-05,2026-02-04,{'12.00' if n < 4 else '10.00'}\n"
        for n in range(10)
    )  # four changes in the first two chunks, then six new invoices
    write = Invoices.write
    calls = []

    def recorded(self, rows, state, prepared, now):
        counts = write(self, rows, state, prepared, now)
        calls.append(counts)
        return counts

    monkeypatch.setattr(Invoices, "write", recorded)
    result = importer.import_csv("invoices", io.StringIO(mixed))
    assert (result.created, result.updated, result.unchanged) == (6, 4, 0)
    kinds = ["new" if created else "change" for created, updated in calls]
    assert kinds == sorted(kinds, key=["new", "change"].index), calls
    assert {i.number: i.total_cents for i in Invoice.select()}["S0003"] == 1_200


def test_customers_are_fetched_once_a_pass_not_once_a_chunk(acme, small_chunks, monkeypatch):
    """A million invoices over a thousand customers named every customer in every chunk and
    fetched them 600 times; now once in the check and once in the write."""
    from portal.services.importer import base

    fetches = []
    in_chunks = base.in_chunks

    def counted(field_, keys, select):
        if field_ is Customer.account_number:
            fetches.append(sorted(set(keys)))
        return in_chunks(field_, keys, select)

    monkeypatch.setattr(base, "in_chunks", counted)
    result = importer.import_csv("invoices", io.StringIO(invoices(10)))
    assert result.created == 10, result.errors
    assert fetches == [["ACME01"], ["ACME01"]]


def test_codes_are_hashed_chunk_after_chunk_by_the_same_processes(
    acme,
    small_chunks,
    monkeypatch,
):
    """The hashing processes start once per import, not once per chunk."""
    monkeypatch.setattr(importer, "PARALLEL_HASH_THRESHOLD", 1)
    started = []
    start = importer.hashing.Pool._start

    def counted(self):
        started.append(1)
        return start(self)

    monkeypatch.setattr(importer.hashing.Pool, "_start", counted)
    result = importer.import_csv("invoices", io.StringIO(invoices(10)))
    assert result.created == 10
    assert started == [1]
    assert len({i.quick_pay_hash for i in Invoice.select()}) == 10


def test_an_import_raises_the_versions_of_the_customers_it_touches_and_no_others(acme):
    """Cached billing figures are keyed by the customer's billing version (0010): an import
    raises it for each customer whose invoices it writes, once per transaction on PostgreSQL
    (0039), and leaves the flag that skips the trigger behind it in no later transaction."""
    other = factories.customer(account_number="OTHER1")
    before = {c.account_number: c.billing_version for c in Customer.select()}
    result = importer.import_csv("invoices", io.StringIO(invoices(5)))
    assert result.created == 5
    after = {c.account_number: c.billing_version for c in Customer.select()}
    assert after["ACME01"] > before["ACME01"]
    assert after["OTHER1"] == before["OTHER1"]

    with write_txn():
        Invoice.update(total_cents=2_000).where(Invoice.number == "S0001").execute()
    assert Customer.get_by_id(acme.id).billing_version > after["ACME01"]
    assert Customer.get_by_id(other.id).billing_version == before["OTHER1"]


@pytest.mark.postgresql
def test_a_bulk_import_queues_no_trigger_event_per_row(app):
    """0042: the billing-version trigger's WHEN skips rows an import writes, so a million-row
    COMMIT runs no million trigger calls; every other write still fires it."""
    definition = db.execute_sql(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'invoice_version'"
    ).fetchone()[0]
    assert "WHEN ((current_setting('doorstep.bulk_billing'" in definition
    assert "DEFERRABLE INITIALLY DEFERRED" in definition


def _pay(app, number: str, outcome: dict) -> None:
    """A payer's write on another connection (the invoice row; its customer's version at
    COMMIT through the trigger), giving up after one second of waiting for a lock."""
    with app.app_context():
        db.connect(reuse_if_open=True)
        try:
            with write_txn():
                db.execute_sql("SET LOCAL lock_timeout = '1s'")
                Invoice.update(description="paid").where(Invoice.number == number).execute()
            outcome[number] = "paid"
        except OperationalError as error:
            outcome[number] = type(error).__name__
        finally:
            db.close()


@pytest.mark.postgresql
def test_a_payer_of_an_invoice_the_file_repeats_unchanged_does_not_wait(app, acme, monkeypatch):
    """Issue 15: an update import locks only the invoices it changes. While it is inside its
    write transaction, a payer of an invoice the file repeats unchanged pays at once; a payer
    of an invoice it changes waits for the import (here: gives up after a second). Before,
    every invoice the file named was locked to the end (127 s at 1M invoices)."""
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    update = HEADER + (
        "S0000,ACME01,2026-01-05,2026-02-04,10.00\nS0001,ACME01,2026-01-05,2026-02-04,12.00\n"
    )
    write = Invoices.write
    outcome = {}

    def write_then_pay(self, rows, state, prepared, now):
        counts = write(self, rows, state, prepared, now)
        for number in ("S0000", "S0001"):  # while the import holds what it wrote
            payer = threading.Thread(target=_pay, args=(app, number, outcome))
            payer.start()
            payer.join(10)
        return counts

    monkeypatch.setattr(Invoices, "write", write_then_pay)
    result = importer.import_csv("invoices", io.StringIO(update))
    assert (result.updated, result.unchanged) == (1, 1)
    assert outcome["S0000"] == "paid"
    assert outcome["S0001"] != "paid"
    assert Invoice.get(Invoice.number == "S0000").description == "paid"
    assert Invoice.get(Invoice.number == "S0001").total_cents == 1_200


@pytest.mark.postgresql
def test_a_big_import_refreshes_the_planners_figures_of_what_it_wrote(acme, monkeypatch):
    """Until autovacuum gets to it, PostgreSQL plans on the table as it was: a second
    100,000-row import right after a first took 135 s instead of 10, its lookups planned as
    scans of a table it thought empty. A big import ANALYZEs the tables it wrote."""
    monkeypatch.setattr(importer, "ANALYZE_AFTER", 5)
    db.execute_sql("ANALYZE invoice")  # the planner's figure: no invoices
    result = importer.import_csv("invoices", io.StringIO(invoices(6)))
    assert result.created == 6
    reltuples = db.execute_sql("SELECT reltuples FROM pg_class WHERE relname = 'invoice'")
    assert reltuples.fetchone()[0] == 6


@pytest.mark.postgresql
def test_a_statement_made_while_a_copy_runs_waits_for_it(acme):
    """The COPY pipeline: while a COPY streams its rows on its own thread, a statement on
    the same connection waits for it instead of deadlocking psycopg2 (it did: both threads
    stopped for good), and sees the rows the COPY stored, in the same transaction."""
    from portal.services.importer import base

    rows = [{"account_number": f"P{n:06d}", "name": f"Piped {n}"} for n in range(50_000)]
    outcome = {}

    def run():
        with write_txn(), base.copies_overlapped():
            base.insert_rows(Customer, rows)  # handed to the pipeline's thread
            outcome["count"] = Customer.select().count()  # made while the COPY runs

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "deadlocked"
    assert outcome == {"count": 50_001}
