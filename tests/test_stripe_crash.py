"""Issue 14: the app is killed between Stripe's confirmation and the application of the
payment; restarted, it applies the payment exactly once.

A real gunicorn process serves the portal. The payer pays on Stripe's page (the suite's
fake); Stripe's webhook reaches the process while the test holds the invoice's lock from
another connection (a row lock on PostgreSQL, the write lock on SQLite), so the process is
inside `apply_event`, waiting, when it gets SIGKILL. Its transaction never commits. A new
process then gets Stripe's retry of the same webhook, and the worker's reconciliation asks
Stripe too: one payment, applied once.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from portal.db import db, is_sqlite
from portal.models import Invoice, Payment
from portal.services import payments

from . import factories, stripe_fixtures
from .conftest import PG_URL

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
GUNICORN = Path(sys.executable).with_name("gunicorn")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def portal_process(app):
    """The same portal (database, keys, Stripe) served by a gunicorn process."""
    port = _free_port()
    config = app.config
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": config["DATABASE_URL"],
        "PORTAL_SECRET_KEY": config["SECRET_KEY"] + "-" * 32,
        "PORTAL_INSTANCE_PATH": config.get("INSTANCE_PATH") or app.instance_path,
        "PORTAL_PAYMENT_PROVIDERS": "offline,stripe",
        "PORTAL_STRIPE_SECRET_KEY": config["STRIPE_SECRET_KEY"],
        "PORTAL_STRIPE_WEBHOOK_SECRET": config["STRIPE_WEBHOOK_SECRET"],
        "PORTAL_STRIPE_API_BASE": config["STRIPE_API_BASE"],
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "PORTAL_MAIL_URL": config["MAIL_URL"],
    }
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "portal:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "60",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the master and its worker die together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or slow to answer at start
                time.sleep(0.1)
        else:
            raise AssertionError("the portal process did not start")
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def invoice_held(invoice_id):
    """Hold what `apply_event` must lock first, from another connection."""
    if is_sqlite():
        import sqlite3

        path = db.obj.database
        conn = sqlite3.connect(path, timeout=1, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        import psycopg2

        conn = psycopg2.connect(PG_URL)
        cursor = conn.cursor()
        cursor.execute("SELECT id FROM invoice WHERE id = %s FOR UPDATE", (invoice_id,))
        try:
            yield
        finally:
            conn.rollback()
            conn.close()


@pytest.fixture
def app(build_app, stripe_env):
    return build_app(PAYMENT_PROVIDERS="offline,stripe", **stripe_env.config)


def test_killed_between_stripe_confirming_and_applying_then_applied_exactly_once(app, stripe_env):
    invoice, _ = factories.invoice(total_cents=30_000)
    with app.test_request_context():
        checkout = payments.checkout(
            invoice.customer, [(invoice, 30_000)], "stripe", "Pat", "pat@example.com", guest=True
        )
    if not db.is_closed():
        db.close()  # the test holds no connection while the process works
    stripe_env.auto_deliver = False
    session_id = checkout.redirect_url.rstrip("/").rsplit("/", 1)[-1]
    stripe_env.complete(session_id, "card")  # Stripe has taken the money
    completed = stripe_env.events_of("checkout.session.completed")[-1]

    with portal_process(app) as (process, url):
        stripe_env.deliver_to = url + "/payments/stripe/webhook"
        with invoice_held(invoice.id):
            delivery = threading.Thread(
                target=lambda: _quietly(stripe_env.deliver, completed), daemon=True
            )
            delivery.start()
            time.sleep(1.5)  # the process is inside apply_event, waiting for the lock
            assert process.poll() is None
            os.killpg(process.pid, signal.SIGKILL)  # the worker too, mid-transaction
            process.wait(timeout=10)
            time.sleep(0.5)
        delivery.join(timeout=10)
    db.connect(reuse_if_open=True)
    assert not Payment.select().exists()  # nothing half-applied
    assert Invoice.get_by_id(invoice.id).balance_cents == 30_000

    with portal_process(app) as (_, url):
        stripe_env.deliver_to = url + "/payments/stripe/webhook"
        answer = stripe_env.deliver(completed)  # Stripe retries what was never acknowledged
        assert answer.status == 200
        assert stripe_env.deliver(completed).status == 200  # and again: a duplicate
    with app.app_context():
        payments.reconcile(grace=timedelta(0))  # the worker asks Stripe as well
    assert Payment.select().count() == 1
    payment = Payment.get()
    assert payment.status == "applied" and payment.amount_cents == 30_000
    assert Invoice.get_by_id(invoice.id).balance_cents == 0


def _quietly(function, *args):
    try:
        function(*args)
    except Exception:  # the process died mid-request: the delivery fails, as it would
        pass
