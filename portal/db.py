"""The one deferred database, its per-request connection, and the write-transaction helper."""

from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flask import request
from peewee import DatabaseProxy, DateTimeField, SqliteDatabase
from playhouse.db_url import connect as connect_url

db = DatabaseProxy()


def sqlite_pragmas(synchronous: str = "full") -> dict:
    """Pragmas for every SQLite connection: WAL, enforced foreign keys, durable commits."""
    return {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": synchronous,
        "cache_size": -32000,
        "busy_timeout": 10000,
    }


def open_database(url: str, *, synchronous: str = "full", max_connections: int = 16):
    """Build a Peewee database from a URL; SQLite and PostgreSQL URLs get a bounded pool.

    The pool keeps each request's connect/close (STYLE 4) but hands back an open
    connection, so the SQLite pragmas and the PostgreSQL handshake happen once per
    connection instead of once per request.
    """
    if url.startswith("sqlite:///"):
        return connect_url(
            "sqlite+pool:///" + url.removeprefix("sqlite:///"),
            pragmas=sqlite_pragmas(synchronous),
            timeout=10,
            max_connections=max_connections,
            stale_timeout=300,
            # A pooled connection moves between threads, but only one uses it at a time.
            check_same_thread=False,
        )
    if url.startswith("sqlite:"):
        return connect_url(url, pragmas=sqlite_pragmas(synchronous), timeout=10)
    if url.startswith(("postgres://", "postgresql://")):
        scheme, rest = url.split("://", 1)
        return connect_url(
            f"{scheme}+pool://{rest}",
            max_connections=max_connections,
            stale_timeout=300,
            timeout=10,
        )
    return connect_url(url)


def init_app(app) -> None:
    """Point the deferred database at the configured URL and manage one connection per request."""
    db.initialize(
        open_database(
            app.config["DATABASE_URL"],
            synchronous=app.config["SQLITE_SYNCHRONOUS"],
            max_connections=app.config["DATABASE_MAX_CONNECTIONS"],
        )
    )
    app.before_request(_connect)
    app.teardown_appcontext(_close)


def _connect() -> None:
    # Static files never touch the database.
    if request.endpoint != "static":
        db.connect(reuse_if_open=True)


def _close(exc) -> None:
    if not db.is_closed():
        db.close()


def is_sqlite() -> bool:
    """True when the configured database is SQLite."""
    return isinstance(db.obj, SqliteDatabase)


@contextmanager
def write_txn():
    """Open the outermost transaction of a write, taking the write lock up front.

    SQLite gets `BEGIN IMMEDIATE`, so `busy_timeout` applies instead of an instant
    SQLITE_BUSY on the first write; PostgreSQL gets READ COMMITTED, and callers lock the
    rows they will change with `locked()`. It refuses to nest, because a nested
    `atomic()` is only a savepoint and would silently lose the lock mode.
    """
    if db.transaction_depth() > 0:
        raise RuntimeError("write_txn() does not nest; call it once per unit of work")
    with db.atomic("IMMEDIATE") if is_sqlite() else db.atomic():
        yield


def locked(query):
    """Add `FOR UPDATE` on PostgreSQL; on SQLite the IMMEDIATE transaction already serialises."""
    return query if is_sqlite() else query.for_update()


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTimeField(DateTimeField):
    """Stores naive UTC in the database and hands back timezone-aware UTC datetimes."""

    def db_value(self, value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


MIGRATIONS_DIR = str(Path(__file__).with_name("migrations"))


def migrate() -> list[str]:
    """Apply pending numbered migrations in order; returns the names applied (idempotent)."""
    from playhouse.migrations import Runner

    with db.connection_context():
        return Runner(db.obj, directory=MIGRATIONS_DIR).up()
