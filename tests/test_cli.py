"""The command line: init-db, create-staff, seed, worker, backup (docs/design.md "Command line")."""

import sqlite3
from datetime import date

from playhouse.migrations import Runner
from playhouse.schema_diff import diff_models

from portal import create_app
from portal.db import MIGRATIONS_DIR, db, is_sqlite, write_txn
from portal.models import ALL_MODELS, Customer, Invoice, OutboxMessage, PaymentAttempt, StaffUser
from portal.security import verify_secret
from portal.services import outbox

from . import factories


def schema() -> dict:
    """Tables with their columns, indexes and foreign keys, as the database reports them."""
    shape = {}
    for table in sorted(db.get_tables()):
        shape[table] = (
            sorted((c.name, c.data_type, c.null, str(c.default)) for c in db.get_columns(table)),
            sorted((i.name, tuple(i.columns), i.unique) for i in db.get_indexes(table)),
            sorted((f.column, f.dest_table, f.dest_column) for f in db.get_foreign_keys(table)),
        )
    return shape


def row_counts() -> dict:
    return {m.__name__: m.select().count() for m in ALL_MODELS}


def test_init_db_creates_the_schema_on_a_fresh_database(make_app, tmp_path):
    """A fresh SQLite file (the default install) gets exactly the models' schema."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}")
    with app.app_context():
        with db.connection_context():
            assert db.get_tables() == []
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "Applied migrations: 0001_initial" in result.output
        with db.connection_context():
            assert not diff_models(db.obj, ALL_MODELS)
            assert {m._meta.table_name for m in ALL_MODELS} <= set(db.get_tables())


def test_init_db_twice_changes_nothing(app, runner):
    factories.invoice()
    factories.staff()
    before_schema, before_rows = schema(), row_counts()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "The database is up to date." in result.output
    assert schema() == before_schema
    assert row_counts() == before_rows


def test_init_db_upgrades_an_existing_database_and_keeps_its_data(make_app, tmp_path):
    """A database made by an older release (only the first migration) is brought up to date."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'old.db'}")
    with app.app_context():
        with db.connection_context():
            Runner(db.obj, directory=MIGRATIONS_DIR).up(target="0001_initial")
            assert "test_checkout_session" not in db.get_tables()
            # Rows as the older release wrote them: its customer table has fewer columns.
            db.execute_sql(
                "INSERT INTO customer (account_number, name, email, phone, address, "
                "portal_enabled, allow_self_registration, auto_invite, created_at, updated_at) "
                "VALUES ('OLD1', 'Old Ltd', '', '', '', 1, 0, 0, '2020-01-01', '2020-01-01')"
            )
            old = Customer.select(Customer.id).where(Customer.account_number == "OLD1").get()
            # Its invoice table too: only the columns it has (a later one is not there yet).
            columns = {c.name for c in db.get_columns("invoice")}
            fields = [f for f in Invoice._meta.sorted_fields if f.column_name in columns]
            fields = [f for f in fields if f.name != "id"]
            invoice = Invoice(
                number="INV-OLD1",
                customer=old.id,
                issue_date=date(2020, 1, 1),
                due_date=date(2020, 1, 31),
                total_cents=4321,
                quick_pay_hash="not a real hash",
            )
            db.execute_sql(
                "INSERT INTO invoice ({}) VALUES ({})".format(
                    ", ".join(f.column_name for f in fields), ", ".join("?" for _ in fields)
                ),
                [f.db_value(invoice.__data__.get(f.name)) for f in fields],
            )
            invoice.id = Invoice.select(Invoice.id).where(Invoice.number == "INV-OLD1").scalar()
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "0002_test_checkout" in result.output and "0001_initial" not in result.output
        with db.connection_context():
            assert not diff_models(db.obj, ALL_MODELS)
            kept = Invoice.get_by_id(invoice.id)
            assert (kept.number, kept.total_cents) == (invoice.number, 4321)
            assert Customer.get_by_id(old.id).billing_version == 0
            assert "owner" in {c.name for c in db.get_columns("payment_attempt")}
            assert PaymentAttempt.select().count() == 0


def test_create_staff(app, runner):
    result = runner.invoke(
        args=["create-staff", "Boss@Example.com", "--password", "long enough pw", "--admin"]
    )
    assert result.exit_code == 0, result.output
    assert "Created admin boss@example.com." in result.output
    boss = StaffUser.get(StaffUser.email == "boss@example.com")
    assert boss.is_admin and boss.password_hash.startswith("$argon2id$")
    assert verify_secret(boss.password_hash, "long enough pw")

    result = runner.invoke(args=["create-staff", "helper@example.com", "--password", "0123456789"])
    assert result.exit_code == 0 and StaffUser.get(
        StaffUser.email == "helper@example.com"
    ).role == ("agent")


def test_create_staff_refuses_duplicates_and_short_passwords(app, runner):
    factories.staff(email="taken@example.com")
    again = runner.invoke(
        args=["create-staff", "taken@example.com", "--password", "long enough pw"]
    )
    assert again.exit_code != 0 and "already has a back-office login" in again.output
    short = runner.invoke(args=["create-staff", "new@example.com", "--password", "short"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    assert StaffUser.select().count() == 1


def test_create_staff_prompts_for_the_password(app, runner):
    result = runner.invoke(
        args=["create-staff", "typed@example.com"], input="typed password\ntyped password\n"
    )
    assert result.exit_code == 0, result.output
    assert "typed password" not in result.output  # hidden input
    user = StaffUser.get(StaffUser.email == "typed@example.com")
    assert verify_secret(user.password_hash, "typed password")


def test_seed_twice(app, runner):
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    assert "customers: 3 created, 0 updated" in first.output
    counts = row_counts()
    assert counts["Invoice"] >= 15 and counts["PortalUser"] == 3 and counts["StaffUser"] == 2
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    lines = [line for line in second.output.splitlines() if line.strip()]
    assert lines and all(line.endswith(": 0 created, 0 updated") for line in lines), lines
    assert row_counts() == counts


def test_worker_once_delivers_due_mail(app, runner, mailbox):
    """B10: what a transaction queued is delivered by `flask worker --once`."""
    with write_txn():
        outbox.queue("pat@example.com", "Your receipt", "Thanks for paying.")
        later = outbox.queue("sam@example.com", "Later", "Not yet.")
        OutboxMessage.update(next_attempt_at=later.next_attempt_at.replace(year=2999)).where(
            OutboxMessage.id == later.id
        ).execute()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    (message,) = mailbox.wait_for(1)
    assert message["To"] == "pat@example.com" and message["Subject"] == "Your receipt"
    assert message.get_content().strip() == "Thanks for paying."
    statuses = {m.to_addr: m.status for m in OutboxMessage.select()}
    assert statuses == {"pat@example.com": "sent", "sam@example.com": "queued"}
    # A second pass sends nothing again.
    runner.invoke(args=["worker", "--once"])
    assert len(mailbox.messages) == 1


def test_backup_writes_a_consistent_snapshot_that_restores(app, tmp_path):
    """J5: `backup` uses VACUUM INTO (consistent under WAL, while the portal writes); the
    copy opens as a portal database with the same rows, and an existing file is refused."""
    if not is_sqlite():
        result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "x.db")])
        assert result.exit_code != 0 and "pg_dump" in result.output
        return
    factories.invoice(number="INV-B1")
    factories.staff(email="keep@example.com")
    target = tmp_path / "backup.db"
    result = app.test_cli_runner().invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT number FROM invoice").fetchall() == [("INV-B1",)]
    copy.close()
    again = app.test_cli_runner().invoke(args=["backup", str(target)])
    assert again.exit_code != 0 and "exists" in again.output
    # Restore: the copy serves as the database of a new app.
    restored = create_app({**app.config, "DATABASE_URL": f"sqlite:///{target}"})
    with restored.app_context(), db.connection_context():
        assert Invoice.get(Invoice.number == "INV-B1")
        assert StaffUser.get(StaffUser.email == "keep@example.com")
