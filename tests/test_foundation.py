"""The app factory, configuration, database wiring, migrations and schema guards."""

import os
import stat
import threading

import pytest
from peewee import IntegrityError
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.schema_diff import diff_models

from portal import create_app
from portal.config import Defaults
from portal.db import db, is_sqlite, migrate, write_txn
from portal.models import ALL_MODELS, Invoice, Payment

from . import factories


def test_secret_key_generated_once_into_instance(tmp_path, template_db):
    instance = tmp_path / "inst"
    first = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": "sqlite://"})
    second = create_app({"INSTANCE_PATH": str(instance), "DATABASE_URL": "sqlite://"})
    key_file = instance / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 40
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_environment_configures_the_app(tmp_path, monkeypatch, template_db):
    monkeypatch.setenv("PORTAL_BASE_URL", "https://portal.example.com")
    monkeypatch.setenv("PORTAL_PAYMENT_PROVIDERS", "offline, test-checkout")
    monkeypatch.setenv("PORTAL_MAIL_FROM", "billing@example.com")
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "DATABASE_URL": "sqlite://"})
    assert app.config["PAYMENT_PROVIDERS"] == ["offline", "test-checkout"]
    assert app.config["MAIL_FROM"] == "billing@example.com"
    # Served over HTTPS: cookies are Secure (checklist D2).
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_default_database_is_sqlite_file_in_instance(tmp_path, monkeypatch, template_db):
    monkeypatch.delenv("PORTAL_DATABASE_URL", raising=False)
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i")})
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'i' / 'portal.db'}"


def test_no_connection_is_open_after_create_app(make_app):
    """J3: nothing connects before gunicorn forks."""
    make_app()
    assert db.is_closed()


def test_database_connection_settings(make_app):
    """J1: WAL, foreign keys, synchronous FULL (the product default; the rest of the suite
    runs with NORMAL to spare the disk), busy timeout; J6: a bounded PostgreSQL pool."""
    app = make_app(SQLITE_SYNCHRONOUS=Defaults.SQLITE_SYNCHRONOUS)
    with app.app_context(), db.connection_context():
        if not is_sqlite():
            assert isinstance(db.obj, PooledPostgresqlDatabase)
            assert db.obj._max_connections == app.config["DATABASE_MAX_CONNECTIONS"]
            return
        pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 2
        assert pragma("busy_timeout") >= 5000


def test_write_txn_refuses_to_nest(app):
    """J2: the lock mode applies only to the outermost transaction, so nesting is an error."""
    with write_txn():
        with pytest.raises(RuntimeError):
            with write_txn():
                pass


def test_write_txn_takes_the_write_lock_up_front(app):
    """J2: BEGIN IMMEDIATE on SQLite; on PostgreSQL a plain READ COMMITTED BEGIN."""
    calls = []
    original = db.obj.begin

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    db.obj.begin = spy
    try:
        with write_txn():
            Invoice.select().count()
    finally:
        del db.obj.begin
    assert calls == ([("IMMEDIATE",)] if is_sqlite() else [()])
    assert db.transaction_depth() == 0


def test_init_db_twice_keeps_data(app, runner):
    customer = factories.customer(name="Keep Me")
    first = runner.invoke(args=["init-db"])
    second = runner.invoke(args=["init-db"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "up to date" in second.output
    assert migrate() == []
    assert customer.__class__.get_by_id(customer.id).name == "Keep Me"


def test_migrations_build_exactly_the_models(app):
    """The schema the migrations build matches the models, so nothing drifts silently."""
    diff = diff_models(db.obj, ALL_MODELS)
    assert not diff, diff


def test_money_columns_are_integers(app):
    """I5: integer minor units, never REAL/NUMERIC."""
    columns = {c.name: c.data_type.lower() for c in db.get_columns("invoice")}
    for name in ("total_cents", "amount_paid_cents", "discount_taken_cents"):
        assert columns[name] in ("integer", "bigint"), (name, columns[name])


def test_invoice_check_constraints(app):
    """I5: the database refuses over-application and negative balances."""
    invoice, _ = factories.invoice(total_cents=10_000)
    with pytest.raises(IntegrityError):
        with db.atomic():
            Invoice.update(amount_paid_cents=10_001).where(Invoice.id == invoice.id).execute()
    with pytest.raises(IntegrityError):
        with db.atomic():
            Invoice.update(amount_paid_cents=-1).where(Invoice.id == invoice.id).execute()
    with pytest.raises(IntegrityError):
        with db.atomic():
            Invoice.update(amount_paid_cents=6000, discount_taken_cents=4001).where(
                Invoice.id == invoice.id
            ).execute()


def test_duplicate_provider_reference_is_refused(app):
    """I5: one Payment per provider payment id."""
    customer = factories.customer()
    fields = dict(
        provider="test-checkout",
        provider_reference="pi_1",
        customer=customer,
        amount_cents=100,
        currency="USD",
    )
    Payment.create(receipt_number="R-1", **fields)
    with pytest.raises(IntegrityError):
        with db.atomic():
            Payment.create(receipt_number="R-2", **fields)


def test_foreign_keys_are_enforced(app):
    with pytest.raises(IntegrityError):
        with db.atomic():
            Invoice.create(
                number="X",
                customer=999999,
                issue_date="2026-01-01",
                due_date="2026-01-31",
                total_cents=1,
                quick_pay_hash="x",
            )


def test_concurrent_writers_do_not_fail(app):
    """J2: writers in several threads wait for the lock instead of failing with SQLITE_BUSY."""
    customer = factories.customer()
    invoice, _ = factories.invoice(customer, total_cents=1_000_000)
    errors = []
    barrier = threading.Barrier(8)

    def worker():
        try:
            with app.app_context():
                db.connect(reuse_if_open=True)
                barrier.wait()
                for _ in range(5):
                    with write_txn():
                        current = Invoice.get_by_id(invoice.id).amount_paid_cents
                        Invoice.update(amount_paid_cents=current + 1).where(
                            Invoice.id == invoice.id
                        ).execute()
                db.close()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    if is_sqlite():
        # IMMEDIATE serialises read-modify-write on SQLite: no lost update.
        assert Invoice.get_by_id(invoice.id).amount_paid_cents == 40


def test_one_open_payment_attempt_per_invoice_is_a_database_rule(app):
    """I3 backstop: a second open attempt item for an invoice is refused by the partial
    unique index; closed items (is_open NULL) may repeat."""
    from datetime import timedelta
    from uuid import uuid4

    from portal.db import utcnow
    from portal.models import PaymentAttempt, PaymentAttemptItem

    invoice, _ = factories.invoice()

    def attempt():
        return PaymentAttempt.create(
            key=str(uuid4()),
            provider="offline",
            customer=invoice.customer,
            amount_cents=100,
            currency="USD",
            expires_at=utcnow() + timedelta(hours=1),
        )

    PaymentAttemptItem.create(attempt=attempt(), invoice=invoice, amount_cents=100)
    with pytest.raises(IntegrityError):
        with db.atomic():
            PaymentAttemptItem.create(attempt=attempt(), invoice=invoice, amount_cents=100)
    PaymentAttemptItem.update(is_open=None).execute()
    PaymentAttemptItem.create(attempt=attempt(), invoice=invoice, amount_cents=100, is_open=None)
    PaymentAttemptItem.create(attempt=attempt(), invoice=invoice, amount_cents=100)
    assert PaymentAttemptItem.select().where(PaymentAttemptItem.is_open).count() == 1


def test_a_database_on_a_network_filesystem_is_warned_about(tmp_path, caplog, monkeypatch):
    """J4: WAL is unsafe on NFS/SMB; startup says so (the mount table decides)."""
    from portal import db as db_module

    mounts = tmp_path / "mounts"
    share = tmp_path / "share"
    share.mkdir()
    mounts.write_text(f"/dev/vda / ext4 rw 0 0\nserver:/export {share} nfs4 rw 0 0\n")
    assert db_module.filesystem_of(str(share / "x"), str(mounts)) == "nfs4"
    assert db_module.filesystem_of(str(tmp_path), str(mounts)) == "ext4"
    real = db_module.filesystem_of
    monkeypatch.setattr(db_module, "filesystem_of", lambda path: real(path, str(mounts)))
    assert db_module.warn_on_network_filesystem(f"sqlite:///{share / 'portal.db'}")
    assert not db_module.warn_on_network_filesystem(f"sqlite:///{tmp_path / 'portal.db'}")
    assert not db_module.warn_on_network_filesystem("postgresql://localhost/x")
    warned = [r.getMessage() for r in caplog.records if "network filesystem" in r.getMessage()]
    assert len(warned) == 1 and "nfs4" in warned[0]
