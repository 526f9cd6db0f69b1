"""A database that is locked, not down: a table lock held on PostgreSQL, a write lock held on
a SQLite file. Web requests wait a bounded time (lock and statement timeouts, the busy
timeout) and answer 503 + Retry-After, as a page and to htmx, instead of hanging every
thread or answering 500; once the lock is released the same pages answer as before."""

import sqlite3
import threading
import time

import psycopg2
import pytest

from portal.db import db, migrate
from portal.models import Case

from . import factories
from .conftest import HX, PG_URL, login

# Longest a locked request may take to answer in these tests (the timeouts are 1-5 s).
PATIENCE = 20


def timed(call):
    """Run `call` in a thread; returns (response or None, seconds). A request that hangs
    past PATIENCE comes back as None, so the test can release the lock and fail."""
    outcome = {}

    def run():
        start = time.monotonic()
        outcome["response"] = call()
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PATIENCE)
    return thread, outcome


def finished(thread, outcome, release):
    """Release the lock, let a hung request end, and return (response, seconds)."""
    hung = thread.is_alive()
    release()
    thread.join(PATIENCE)
    assert not hung, f"the request still waited after {PATIENCE} s"
    return outcome["response"], outcome["seconds"]


@pytest.fixture
def buyer(app):
    customer = factories.customer(name="Acme Manufacturing")
    factories.invoice(customer, number="INV-LOCKED")
    return factories.portal_user(customer, email="pat@acme.example")


@pytest.mark.postgresql
def test_a_locked_invoice_table_answers_503_then_200(client, buyer):
    """K1, J6. Finding: `LOCK TABLE invoice` from another connection hung every request. With the
    default lock timeout (5 s) the invoice list answers 503 + Retry-After in seconds, as a
    page and to a targeted htmx request; after the release, 200."""
    login(client, "pat@acme.example")
    assert client.get("/invoices/").status_code == 200

    holder = psycopg2.connect(PG_URL)
    holder.autocommit = False
    try:
        holder.cursor().execute("LOCK TABLE invoice IN ACCESS EXCLUSIVE MODE")
        thread, outcome = timed(lambda: client.get("/invoices/"))
        page, seconds = finished(thread, outcome, lambda: None)
        assert page.status_code == 503, page.status_code
        assert seconds < 5 + 3, seconds
        assert page.headers["Retry-After"] == "10"
        text = page.get_data(as_text=True)
        assert "<html" in text and "briefly unavailable" in text

        thread, outcome = timed(lambda: client.get("/invoices/", headers={**HX, "HX-Target": "x"}))
        fragment, seconds = finished(thread, outcome, lambda: None)
        assert fragment.status_code == 503 and seconds < 8
        assert fragment.headers["Retry-After"] == "10"
        assert "HX-Request" in fragment.headers["Vary"]
        text = fragment.get_data(as_text=True)
        assert "<html" not in text and "briefly unavailable" in text
    finally:
        holder.rollback()
        holder.close()
    assert client.get("/invoices/").status_code == 200


@pytest.mark.postgresql
def test_a_slow_statement_is_cancelled_by_the_statement_timeout(build_app):
    """K1, J6: a statement running longer than `PORTAL_DATABASE_STATEMENT_TIMEOUT` in a web request
    is cancelled (503), instead of holding a thread and a connection for as long as it runs;
    the same statement on a connection of the worker or the command line is not limited."""
    app = build_app(DATABASE_STATEMENT_TIMEOUT=1)

    @app.get("/slow")
    def slow():
        db.execute_sql("SELECT pg_sleep(3)")
        return "done"

    started = time.monotonic()
    response = app.test_client().get("/slow")
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    assert time.monotonic() - started < 2.5
    # A connection that never served a request (the worker's, an import's) has no limit.
    db.obj.close_all()
    with app.app_context(), db.connection_context():
        db.execute_sql("SELECT pg_sleep(1.2)")


def test_a_held_sqlite_write_lock_answers_503_within_the_busy_timeout(make_app, tmp_path):
    """K1, J1. Finding: on SQLite a write lock held by another connection (`BEGIN IMMEDIATE`) made
    every write wait 10 s and then fail. A customer's POST waits the bounded web lock
    timeout and answers 503 + Retry-After with a clear message, as a page and to htmx;
    after the release the same POST succeeds. (A SQLite file of its own, on both runs.)"""
    path = tmp_path / "own" / "portal.db"
    path.parent.mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{path}", DATABASE_LOCK_TIMEOUT=1)
    with app.app_context():
        migrate()
        with db.connection_context():
            customer = factories.customer(name="Acme Manufacturing")
            factories.portal_user(customer, email="pat@acme.example")
    client = app.test_client()
    assert login(client, "pat@acme.example").status_code == 303
    case = {"subject": "Damaged pallet", "body": "Two boxes arrived crushed."}

    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        thread, outcome = timed(lambda: client.post("/cases/new", data=case))
        page, seconds = finished(thread, outcome, lambda: None)
        assert page.status_code == 503, page.status_code
        assert seconds < 1 + 2, seconds
        assert page.headers["Retry-After"] == "10"
        assert "briefly unavailable" in page.get_data(as_text=True)

        thread, outcome = timed(lambda: client.post("/cases/new", data=case, headers=HX))
        fragment, seconds = finished(thread, outcome, lambda: None)
        assert fragment.status_code == 503 and seconds < 3
        assert fragment.headers["Retry-After"] == "10"
        assert "<html" not in fragment.get_data(as_text=True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert client.post("/cases/new", data=case).status_code == 303
    with app.app_context(), db.connection_context():
        assert Case.select().count() == 1  # the refused POSTs wrote nothing
    db.obj.close_all()


def test_the_default_web_lock_timeout_is_bounded(make_app, tmp_path):
    """J1: without configuration a web request waits at most 5 s for a SQLite write lock (it
    was 10 s); the worker and the command line keep the longer busy timeout."""
    path = tmp_path / "own" / "portal.db"
    path.parent.mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{path}")
    with app.app_context():
        migrate()
        with db.connection_context():
            assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 30_000

    @app.get("/busy")
    def busy():
        return str(db.execute_sql("PRAGMA busy_timeout").fetchone()[0])

    assert app.test_client().get("/busy").get_data(as_text=True) == "5000"
    db.obj.close_all()

    # 0 sets no web limit: the background's wait, never SQLite's "do not wait at all".
    app = make_app(DATABASE_URL=f"sqlite:///{path}", DATABASE_LOCK_TIMEOUT=0)
    app.get("/busy")(busy)
    assert app.test_client().get("/busy").get_data(as_text=True) == "60000"
    db.obj.close_all()


def test_an_exhausted_connection_pool_answers_503(make_app, monkeypatch):
    """K1: every pooled connection busy past the pool's wait is a 503 + Retry-After (the
    database is not keeping up), not a 500; once one is free, 200."""
    app = make_app(DATABASE_MAX_CONNECTIONS=1)
    monkeypatch.setattr(db.obj, "_wait_timeout", 1)  # the pool's wait (10 s) made short
    taken, release = threading.Event(), threading.Event()

    def hold():
        with app.app_context(), db.connection_context():
            taken.set()
            release.wait(PATIENCE)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(PATIENCE)
    client = app.test_client()
    try:
        response = client.get("/login")
        assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    finally:
        release.set()
        holder.join(PATIENCE)
    assert client.get("/login").status_code == 200
    db.obj.close_all()
