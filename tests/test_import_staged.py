"""Staged import changes (issue 15): a file's changes to stored invoices are applied after its
commit, a few hundred rows per short transaction, so no payer waits for a whole file; the
file is still accepted or refused whole, and a killed import's changes are finished by the
worker, each once."""

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from playhouse.schema_diff import diff_models

from portal.db import db, write_txn
from portal.models import AuditLog, Customer, Invoice
from portal.models_imports import ALL_IMPORT_MODELS, ImportChange, ImportRun
from portal.security import verify_code
from portal.services import importer, jobs
from portal.services.importer import staging
from portal.services.importer.invoices import Invoices

from . import factories
from . import test_import_stream as stream
from .conftest import HX, staff_login
from .test_import_stream import HEADER, _pay, invoices

ROOT = Path(__file__).resolve().parent.parent
acme, small_chunks = stream.acme, stream.small_chunks  # the same fixtures


@pytest.fixture
def small_pieces(small_chunks, monkeypatch):
    """Two staged rows per piece, three rows per chunk."""
    monkeypatch.setattr(staging, "APPLY_ROWS", 2)


def paid_after_commit(monkeypatch, number: str, cents: int = 800) -> None:
    """A payment of `number` recorded after the file's commit, before its pieces."""
    wait_for = staging.wait_for

    def paid_first(run_id, specs, patience=None):
        if run_id is None:  # the import waiting for earlier runs, before its first pass
            return wait_for(run_id, specs, patience)
        with write_txn():
            Invoice.update(amount_paid_cents=cents).where(Invoice.number == number).execute()
        return wait_for(run_id, specs, patience)

    monkeypatch.setattr(staging, "wait_for", paid_first)


class OtherHost:
    """Another host's worker holding the first staged piece (`FOR UPDATE`) in a thread of
    its own until `release()`."""

    def __init__(self, app):
        self.app = app
        self.held, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def start(self) -> None:
        self.thread.start()
        self.held.wait(10)

    def release(self) -> None:
        self.released.set()
        self.thread.join(10)

    def _hold(self):
        with self.app.app_context():
            db.connect(reuse_if_open=True)
            try:
                with write_txn():
                    first = ImportChange.select().order_by(ImportChange.id).first()
                    ImportChange.select().where(ImportChange.id == first.id).for_update().get()
                    self.held.set()
                    self.released.wait(20)
            finally:
                db.close()


def totals() -> dict[str, int]:
    return {i.number: i.total_cents for i in Invoice.select()}


def test_migration_0047_builds_exactly_the_import_models(app):
    """STYLE 5: the tables migration 0047 builds match portal/models_imports.py."""
    diff = diff_models(db.obj, ALL_IMPORT_MODELS)
    assert not diff, diff


def staged_only(monkeypatch):
    """The import stops after its commit: its changes stay staged, applied by nobody."""
    wait_for = staging.wait_for

    def not_applied(run_id, specs, patience=None):
        if run_id is None:  # before its first pass: as usual
            return wait_for(run_id, specs, patience)
        return ImportRun.get_by_id(run_id)

    monkeypatch.setattr(staging, "wait_for", not_applied)


def test_changes_are_applied_in_pieces_after_the_files_commit(acme, small_pieces, monkeypatch):
    importer.import_csv("invoices", io.StringIO(invoices(6)))
    transactions = []
    apply_next = staging._apply_next

    def counted(specs):
        applied = apply_next(specs)
        if applied:
            transactions.append(db.in_transaction())
        return applied

    monkeypatch.setattr(staging, "_apply_next", counted)
    result = importer.import_csv(
        "invoices", io.StringIO(invoices(5, total="12.00") + invoices(4, start=5)[len(HEADER) :])
    )
    assert (result.created, result.updated, result.unchanged) == (3, 5, 1), result.errors
    assert result.staged == 5 and result.skipped == []
    assert len(transactions) == 3  # 5 changes, 2 a piece: each committed on its own
    assert not any(transactions)
    assert totals() == {**{f"S{n:04d}": 1_200 for n in range(5)}, "S0005": 1_000} | {
        f"S{n:04d}": 1_000 for n in range(6, 9)
    }
    run = ImportRun.get()
    assert (run.state, run.created, run.staged, run.updated) == ("done", 3, 5, 5)
    assert run.finished_at is not None
    assert not ImportChange.select().exists()
    entry = AuditLog.select().where(AuditLog.action == "import.invoices").order_by(AuditLog.id)
    assert json.loads(entry[-1].detail) == {"created": 3, "updated": 5}


@pytest.mark.postgresql
def test_a_payer_of_a_changed_invoice_waits_for_one_piece_not_the_file(
    app, acme, small_pieces, monkeypatch
):
    """The finding: a payer of an invoice an import changes waited for its COMMIT (16 s at
    142,857 changes). Now the payer of S0000, changed in the first piece, pays at once while
    the last piece is being written; a payer of an invoice in the piece being written waits
    (here gives up after a second), as for any payment of a row being changed."""
    importer.import_csv("invoices", io.StringIO(invoices(6)))
    write = Invoices.write
    outcome = {}

    def write_then_pay(self, rows, state, prepared, now):
        counts = write(self, rows, state, prepared, now)
        if [row.key for row in rows] == ["S0004", "S0005"]:  # the last of three pieces
            for number in ("S0000", "S0005"):
                payer = threading.Thread(target=_pay, args=(app, number, outcome))
                payer.start()
                payer.join(10)
        return counts

    monkeypatch.setattr(Invoices, "write", write_then_pay)
    result = importer.import_csv("invoices", io.StringIO(invoices(6, total="12.00")))
    assert result.updated == 6, result.errors
    assert outcome == {"S0000": "paid", "S0005": "OperationalError"}
    changed = Invoice.get(Invoice.number == "S0000")
    assert (changed.total_cents, changed.description) == (1_200, "paid")


def test_a_change_a_payment_meanwhile_no_longer_allows_is_skipped_and_reported(
    acme, small_pieces, monkeypatch
):
    """The conflict rule: the portal's record of money taken wins. S0002 is paid $8.00 after
    the file was accepted and before its piece is applied; the file's new total of $5.00 no
    longer covers that, so that one row is not applied, and says why; the rest are."""
    importer.import_csv("invoices", io.StringIO(invoices(4)))
    paid_after_commit(monkeypatch, "S0002")
    result = importer.import_csv("invoices", io.StringIO(invoices(4, total="5.00")))
    assert result.ok
    assert result.skipped == [
        "line 4: total 5.00 is less than the 8.00 already paid or discounted on this invoice"
    ]
    assert (result.updated, result.unchanged) == (3, 0)
    assert totals() == {"S0000": 500, "S0001": 500, "S0002": 1_000, "S0003": 500}
    entry = AuditLog.get(AuditLog.action == "import.invoices.skipped")
    assert json.loads(entry.detail)["skipped"] == result.skipped


def test_a_new_file_waits_for_an_earlier_files_changes(acme, small_pieces, monkeypatch):
    """Imports apply in file order. The first file (totals 12.00) is accepted, then its
    process stops before applying; the second sets the totals back to 10.00, which is what
    the database still shows. Judged against that, the second file would change nothing and
    the first file's changes, applied later, would win; instead they are applied first."""
    importer.import_csv("invoices", io.StringIO(invoices(3)))

    def stopped(run_id, specs, patience=None):
        if run_id is None:
            return None
        raise KeyboardInterrupt  # the process stops right after the first file's commit

    monkeypatch.setattr(staging, "wait_for", stopped)
    with pytest.raises(KeyboardInterrupt):
        importer.import_csv("invoices", io.StringIO(invoices(3, total="12.00")))
    assert totals() == {"S0000": 1_000, "S0001": 1_000, "S0002": 1_000}
    assert ImportRun.get().state == "applying"
    monkeypatch.undo()
    monkeypatch.setattr(staging, "APPLY_ROWS", 2)

    second = importer.import_csv("invoices", io.StringIO(invoices(3)))
    assert (second.updated, second.unchanged) == (3, 0)
    assert totals() == {"S0000": 1_000, "S0001": 1_000, "S0002": 1_000}
    assert [r.state for r in ImportRun.select().order_by(ImportRun.id)] == ["done", "done"]


def test_a_staged_quick_pay_code_is_never_kept_in_clear(acme, monkeypatch):
    """A3: a staged change carries the new quick-pay code sealed, as the invoice keeps its
    own copy, never in clear; applied, the code works and its old links die."""
    importer.import_csv("invoices", io.StringIO(invoices(1)))
    code = "QPCHANGED1234567"
    text = HEADER.strip() + ",quick_pay_code\nS0000,ACME01,2026-01-05,2026-02-04,10.00," + code
    staged_only(monkeypatch)
    importer.import_csv("invoices", io.StringIO(text + "\n"))
    staged = ImportChange.get().rows
    assert code not in staged and "S0000" in staged
    monkeypatch.undo()
    assert importer.finish_pending() == 1
    invoice = Invoice.get(Invoice.number == "S0000")
    assert verify_code(invoice.quick_pay_hash, code)
    assert invoice.quick_pay_version == 2  # the old code's signed links die with it


@pytest.mark.postgresql
def test_two_appliers_share_the_pieces_and_apply_each_once(app, acme, small_pieces, monkeypatch):
    """Two hosts' workers: a piece another is applying is skipped (`SKIP LOCKED`), not
    waited for and not applied twice."""
    importer.import_csv("invoices", io.StringIO(invoices(6)))
    staged_only(monkeypatch)
    importer.import_csv("invoices", io.StringIO(invoices(6, total="12.00")))
    other = OtherHost(app)
    other.start()
    assert importer.finish_pending() == 2  # the two pieces nobody holds
    assert ImportRun.get().state == "applying"
    other.release()
    assert importer.finish_pending() == 1
    run = ImportRun.get(ImportRun.staged == 6)
    assert (run.state, run.updated) == ("done", 6)
    assert set(totals().values()) == {1_200}


def test_the_worker_finishes_an_import_killed_while_applying(tmp_path):
    """I6: a real `flask import` process, SIGKILLed after its first piece: what it accepted is
    committed and staged, the rest is applied by `flask worker --once`, each change once,
    with one audit entry for the file."""
    env = {
        **os.environ,
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "PORTAL_SECRET_KEY": "import-kill-test-secret-key-0123456789",
        "PORTAL_MAIL_URL": "smtp://127.0.0.1:9",  # the worker's mail loop sends nothing
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PORTAL_TEST_DATABASE_URL", None)

    def run(*args):
        return subprocess.run(
            [sys.executable, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run("-m", "flask", "--app", "portal", "init-db").returncode == 0
    (tmp_path / "customers.csv").write_text("account_number,name\nACME01,Acme\n")
    (tmp_path / "first.csv").write_text(invoices(10))
    (tmp_path / "second.csv").write_text(invoices(10, total="12.00"))
    for kind, name in (("customers", "customers.csv"), ("invoices", "first.csv")):
        assert run("-m", "flask", "--app", "portal", "import", kind, name).returncode == 0
    killed = run(
        "-c",
        "import os, signal\n"
        "from portal import create_app\n"
        "from portal.services import importer\n"
        "from portal.services.importer import staging\n"
        "staging.APPLY_ROWS = 3\n"
        "apply_next, pieces = staging._apply_next, []\n"
        "def then_die(specs):\n"
        "    if any(pieces):  # one piece applied: die before the next\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    pieces.append(apply_next(specs))\n"
        "    return pieces[-1]\n"
        "staging._apply_next = then_die\n"
        "with create_app().app_context():\n"
        "    importer.import_csv('invoices', open('second.csv', 'rb'))\n",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    database = tmp_path / "portal.db"

    def read(sql):
        with sqlite3.connect(database) as conn:
            return conn.execute(sql).fetchall()

    assert read("SELECT state, staged, updated FROM import_run") == [("applying", 10, 3)]
    assert read("SELECT count(*) FROM import_change") == [(3,)]  # 7 rows left: 3 + 3 + 1
    assert read("SELECT count(*) FROM invoice WHERE total_cents = 1200") == [(3,)]

    worker = run("-m", "flask", "--app", "portal", "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    assert read("SELECT state, staged, updated FROM import_run") == [("done", 10, 10)]
    assert read("SELECT count(*) FROM import_change") == [(0,)]
    assert read("SELECT count(*) FROM invoice WHERE total_cents = 1200") == [(10,)]
    audit = read("SELECT detail FROM audit_log WHERE action = 'import.invoices' ORDER BY id")
    assert [json.loads(d) for (d,) in audit] == [
        {"created": 10, "updated": 0},
        {"created": 0, "updated": 10},
    ]


def test_the_worker_applies_staged_changes_each_pass(app, acme, monkeypatch):
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    staged_only(monkeypatch)
    importer.import_csv("invoices", io.StringIO(invoices(2, total="12.00")))
    assert importer.finish_pending in jobs.MONEY_TASKS
    assert jobs.money_pass() >= 1
    assert totals() == {"S0000": 1_200, "S0001": 1_200}
    assert ImportRun.get(ImportRun.staged == 2).state == "done"


def test_staff_see_which_changes_were_not_applied_and_why(client, acme, monkeypatch):
    """The back office's upload says which rows a payment taken meanwhile kept out, next to
    the counts, so staff can correct the ERP; the file itself was accepted."""
    from .test_staff_import import upload

    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    paid_after_commit(monkeypatch, "S0001")
    response = upload(client, "invoices", invoices(2, total="5.00"), headers=HX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "0 created, 1 updated, 0 unchanged" in html
    assert "One change was not applied</strong>, because of payments taken" in html
    assert "line 3: total 5.00 is less than the 8.00 already paid" in html


def test_the_command_line_names_each_change_not_applied(app, acme, monkeypatch, tmp_path):
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    paid_after_commit(monkeypatch, "S0001")
    path = tmp_path / "invoices.csv"
    path.write_text(invoices(2, total="5.00"))
    out = app.test_cli_runner().invoke(args=["import", "invoices", str(path)])
    assert out.exit_code == 0, out.output
    assert "line 3: total 5.00 is less than the 8.00 already paid" in out.output
    assert "invoices: 0 created, 1 updated, 1 not applied" in out.output


def test_the_staff_home_shows_an_import_still_applying(client, acme, monkeypatch):
    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    importer.import_csv("invoices", io.StringIO(invoices(3)))
    assert "still applying" not in client.get("/staff/").get_data(as_text=True)
    staged_only(monkeypatch)
    importer.import_csv("invoices", io.StringIO(invoices(3, total="12.00")))
    html = client.get("/staff/").get_data(as_text=True)
    assert "An import of invoices is still applying its changes" in html
    assert "0 of 3 so far" in html
    assert "The background worker finishes it once it runs again." in html  # never ran here
    importer.finish_pending()
    assert "still applying" not in client.get("/staff/").get_data(as_text=True)


@pytest.mark.postgresql
def test_a_deadlock_with_a_payer_is_tried_again_not_lost(app, acme, monkeypatch, caplog):
    """J6: a real deadlock: a payer locks S0001 and then asks for S0000 while a piece holds
    S0000 and waits for S0001. PostgreSQL ends the piece's transaction (it waited first);
    the piece is tried again once the payer commits, and every change lands."""
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    holding, outcome = threading.Event(), {}

    def payer():
        with app.app_context():
            db.connect(reuse_if_open=True)
            try:
                with write_txn():
                    Invoice.update(description="paid").where(Invoice.number == "S0001").execute()
                    holding.set()
                    time.sleep(0.5)  # the piece locks S0000 and waits for S0001 meanwhile
                    Invoice.update(description="paid").where(Invoice.number == "S0000").execute()
                outcome["payer"] = "paid"
            finally:
                db.close()

    thread = threading.Thread(target=payer)
    wait_for = staging.wait_for

    def with_a_payer(run_id, specs, patience=None):
        if run_id is None:
            return None
        thread.start()
        holding.wait(10)
        return wait_for(run_id, specs, patience)

    monkeypatch.setattr(staging, "wait_for", with_a_payer)
    result = importer.import_csv("invoices", io.StringIO(invoices(2, total="12.00")))
    thread.join(10)
    assert outcome == {"payer": "paid"}
    assert (result.updated, result.skipped) == (2, [])
    assert totals() == {"S0000": 1_200, "S0001": 1_200}
    assert "met a lock conflict" in caplog.text and "deadlock" in caplog.text


@pytest.mark.postgresql
def test_another_threads_statements_neither_wait_for_nor_take_an_imports_copy(app, acme):
    """The COPY guard belongs to the import's own context: a web host's other request (a
    thread of its own, on its own connection) runs at once while an import's COPY is in
    flight and never receives that COPY's error; the import gets it."""
    from portal.services.importer import base

    factories.customer(account_number="DUP")
    rows = [{"account_number": f"Q{n:06d}", "name": "Q"} for n in range(20_000)]
    rows.append({"account_number": "DUP", "name": "again"})  # the COPY fails at its end
    started, outcome = threading.Event(), {}

    def other_request():
        started.wait(10)
        with app.app_context():
            db.connect(reuse_if_open=True)
            try:
                outcome["other"] = Customer.select().where(Customer.account_number == "DUP").count()
            except Exception as error:
                outcome["other"] = type(error).__name__
            finally:
                db.close()

    thread = threading.Thread(target=other_request)
    thread.start()
    with pytest.raises(Exception) as raised:  # psycopg2's own: COPY is not through peewee
        with write_txn(), base.copies_overlapped():
            base.insert_rows(Customer, rows)
            started.set()
            thread.join(10)
    assert importer._is_integrity_error(raised.value)
    assert outcome == {"other": 1}


def test_only_a_lock_conflict_is_tried_again(acme, small_pieces, monkeypatch):
    """A piece that meets "database is locked" is tried again and lands; one that meets an
    error that would fail every time (a disk error) is rolled back to its savepoint, set
    aside and reported, so it never stops the import or the ones after it."""
    from peewee import OperationalError

    importer.import_csv("invoices", io.StringIO(invoices(4)))
    write = Invoices.write
    failures = {"S0000": ["database is locked"], "S0002": ["disk I/O error"] * 10}

    def flaky(self, rows, state, prepared, now):
        for row in rows:
            if failures.get(row.key):
                raise OperationalError(failures[row.key].pop())
        return write(self, rows, state, prepared, now)

    monkeypatch.setattr(Invoices, "write", flaky)
    result = importer.import_csv("invoices", io.StringIO(invoices(4, total="12.00")))
    assert result.skipped == [
        "line 4: not applied (OperationalError)",
        "line 5: not applied (OperationalError)",
    ]
    assert totals() == {"S0000": 1_200, "S0001": 1_200, "S0002": 1_000, "S0003": 1_000}
    assert result.updated == 2 and not result.applying
    monkeypatch.undo()  # the set-aside piece holds up nothing: the next file goes through
    later = importer.import_csv("invoices", io.StringIO(invoices(4, total="12.00")))
    assert (later.updated, later.unchanged) == (2, 2)


@pytest.mark.postgresql
def test_an_import_stops_waiting_for_a_piece_another_host_holds(app, acme, monkeypatch):
    """Another host holds one of the file's pieces longer than the import waits
    (`staging.PATIENCE`): the import answers with what it applied so far and says the rest
    is being applied; the next import meanwhile refuses to start on top of it; the worker
    finishes it once the piece is free."""
    monkeypatch.setattr(staging, "APPLY_ROWS", 2)
    monkeypatch.setattr(staging, "PATIENCE", 0.5)
    importer.import_csv("invoices", io.StringIO(invoices(4)))
    other = OtherHost(app)
    wait_for = staging.wait_for

    def held_first(run_id, specs, patience=None):
        if run_id is not None and not other.thread.is_alive():
            other.start()
        return wait_for(run_id, specs, patience)

    monkeypatch.setattr(staging, "wait_for", held_first)
    result = importer.import_csv("invoices", io.StringIO(invoices(4, total="12.00")))
    assert result.ok and result.applying
    assert (result.updated, result.staged) == (2, 4)
    behind = importer.import_csv("invoices", io.StringIO(invoices(1, total="15.00")))
    assert behind.errors == [importer.BEHIND]
    other.release()
    assert jobs.money_pass() >= 1
    assert set(totals().values()) == {1_200}
    assert ImportRun.get(ImportRun.staged == 4).state == "done"


def test_a_staged_code_that_cannot_be_read_back_is_reported_not_dropped(acme, monkeypatch):
    """The secret key changed between staging and applying (a killed import, a rotation):
    the row's new quick-pay code cannot be unsealed, so the row is not applied and says why,
    instead of silently keeping the old code."""
    from portal.services.importer import invoices as invoice_kind

    importer.import_csv("invoices", io.StringIO(invoices(1)))
    text = (
        HEADER.strip()
        + ",quick_pay_code\nS0000,ACME01,2026-01-05,2026-02-04,12.00,QPNEWCODE1234567\n"
    )
    staged_only(monkeypatch)
    importer.import_csv("invoices", io.StringIO(text))
    monkeypatch.undo()
    monkeypatch.setattr(invoice_kind, "unseal", lambda sealed: None)
    importer.finish_pending()
    run = ImportRun.get(ImportRun.staged == 1)
    assert run.skipped_lines == [
        "line 2: its quick_pay_code could not be read back after a change of secret key"
    ]
    assert totals() == {"S0000": 1_000}


def test_a_finished_run_moves_the_import_generation(acme, monkeypatch):
    """An import that read the invoices while another run was still applying must judge its
    rows again: closing a run moves the generation, as accepting a file does."""
    importer.import_csv("invoices", io.StringIO(invoices(2)))
    staged_only(monkeypatch)
    importer.import_csv("invoices", io.StringIO(invoices(2, total="12.00")))
    monkeypatch.undo()
    before = staging.generation()
    importer.finish_pending()
    assert staging.generation() == before + 1
