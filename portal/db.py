"""The one deferred database, its per-request connection, and the write-transaction helper."""

import logging
import os
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

from flask import request
from peewee import SQL, DatabaseProxy, DateTimeField, Node, SqliteDatabase
from playhouse.db_url import connect as connect_url

db = DatabaseProxy()


# How long a statement outside a web request (the worker, imports and migrations from the
# command line) waits for SQLite's write lock; web requests wait DATABASE_LOCK_TIMEOUT.
BACKGROUND_BUSY_TIMEOUT_MS = 60_000

# Web requests: seconds to wait for a lock (PostgreSQL `lock_timeout`, SQLite's busy timeout)
# and for one statement (PostgreSQL `statement_timeout`); 0 sets no web limit. A request that
# runs out answers 503 + Retry-After (errors.py) instead of holding its thread while a lock
# is held elsewhere. `PORTAL_DATABASE_LOCK_TIMEOUT`, `PORTAL_DATABASE_STATEMENT_TIMEOUT`.
WEB_TIMEOUTS = {"DATABASE_LOCK_TIMEOUT": 5, "DATABASE_STATEMENT_TIMEOUT": 30}


def sqlite_pragmas(synchronous: str = "full") -> dict:
    """Pragmas for every SQLite connection: WAL, enforced foreign keys, durable commits."""
    return {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": synchronous,
        "cache_size": -32000,
        "busy_timeout": BACKGROUND_BUSY_TIMEOUT_MS,
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
        return connect_url(
            url, pragmas=sqlite_pragmas(synchronous), timeout=BACKGROUND_BUSY_TIMEOUT_MS / 1000
        )
    if url.startswith(("postgres://", "postgresql://")):
        scheme, rest = url.split("://", 1)
        return connect_url(
            f"{scheme}+pool://{rest}",
            max_connections=max_connections,
            stale_timeout=300,
            timeout=10,
        )
    return connect_url(url)


NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs"}


def filesystem_of(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding `path` (the longest matching mount point)."""
    path = os.path.realpath(path)
    best, kind = "", None
    try:
        with open(mounts) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, parts[2]
    except OSError:
        return None
    return kind


def warn_on_network_filesystem(url: str, log=None) -> bool:
    """Checklist J4: SQLite's WAL needs every process on one host with shared memory; a
    database file on NFS or SMB corrupts under concurrent writers. Warn at startup."""
    if not url.startswith("sqlite:///"):
        return False
    folder = os.path.dirname(url.removeprefix("sqlite:///")) or "."
    kind = filesystem_of(folder)
    if kind in NETWORK_FILESYSTEMS or (kind or "").startswith("fuse.sshfs"):
        (log or logging.getLogger(__name__)).warning(
            "the SQLite database %s is on a network filesystem (%s): WAL mode is not safe "
            "there; keep it on a local disk or use PostgreSQL",
            url,
            kind,
        )
        return True
    return False


def init_app(app) -> None:
    """Point the deferred database at the configured URL and manage one connection per request."""
    warn_on_network_filesystem(app.config["DATABASE_URL"], app.logger)
    db.initialize(
        open_database(
            app.config["DATABASE_URL"],
            synchronous=app.config["SQLITE_SYNCHRONOUS"],
            max_connections=app.config["DATABASE_MAX_CONNECTIONS"],
        )
    )
    for name, seconds in WEB_TIMEOUTS.items():
        app.config.setdefault(name, seconds)
    limits = web_timeouts_sql(
        app.config["DATABASE_URL"],
        lock=app.config["DATABASE_LOCK_TIMEOUT"],
        statement=app.config["DATABASE_STATEMENT_TIMEOUT"],
    )

    def connect() -> None:
        if request.endpoint not in NO_CONNECTION:
            db.connect(reuse_if_open=True)
            db.execute_sql(limits)

    app.before_request(connect)
    app.teardown_appcontext(_close)


def _milliseconds(seconds) -> int:
    value = float(seconds)
    if value < 0:
        raise ValueError("database timeouts are seconds, 0 or more")
    return round(value * 1000)


def web_timeouts_sql(url: str, *, lock, statement) -> str:
    """The statement that limits a pooled connection's waits for the web request that checked
    it out. Set per request (one round trip, no parsing on SQLite): the same pool serves no
    one else in a web process, and the worker and the command line never run it, so their
    imports and migrations wait as long as they need."""
    if is_sqlite_url(url):
        # SQLite has no statement timeout; its busy timeout bounds the wait for the write lock
        # (where 0 would mean "never wait": no web limit is the background's).
        busy = _milliseconds(lock) or BACKGROUND_BUSY_TIMEOUT_MS
        return f"PRAGMA busy_timeout = {busy}"
    return (
        f"SET lock_timeout = {_milliseconds(lock)}; "
        f"SET statement_timeout = {_milliseconds(statement)}"
    )


def lift_statement_timeout() -> None:
    """Inside a `write_txn`: no statement timeout until it ends (PostgreSQL `SET LOCAL`), for
    work bounded by its input rather than by the clock (an uploaded import and its commit).
    The lock timeout stays: waiting on someone else's lock is still refused."""
    if not is_sqlite():
        db.execute_sql("SET LOCAL statement_timeout = 0")


# Static files never touch the database; the health checks answer (or open their own
# connection) when it is down.
NO_CONNECTION = {"static", "health.live", "health.ready"}


def _close(exc) -> None:
    if not db.is_closed():
        db.close()


def is_sqlite_url(url: str) -> bool:
    """True for a SQLite database URL (the default)."""
    return url.startswith("sqlite")


def is_sqlite() -> bool:
    """True when the configured database is SQLite."""
    return isinstance(db.obj, SqliteDatabase)


# What the open `write_txn` runs once it has committed (see `after_commit`).
_after_commit: ContextVar[list | None] = ContextVar("after_commit", default=None)


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
    pending: list = []
    token = _after_commit.set(pending)
    try:
        with db.atomic("IMMEDIATE") if is_sqlite() else db.atomic():
            yield
    finally:
        _after_commit.reset(token)
    # Reached only when the block committed: an exception rolled it back and went past.
    for callback in pending:
        callback()


def after_commit(callback) -> None:
    """Run `callback` when the open `write_txn` commits, never if it rolls back; at once
    outside one. For effects outside the database that must not announce a change that
    did not happen (the audit log line)."""
    pending = _after_commit.get()
    if pending is None or db.transaction_depth() == 0:
        callback()
    else:
        pending.append(callback)


def locked(query):
    """Add `FOR UPDATE` on PostgreSQL; on SQLite the IMMEDIATE transaction already serialises."""
    return query if is_sqlite() else query.for_update()


def in_values(values: list) -> SQL:
    """`(?, ?, ...)` with `values` as plain parameters, for `field.in_(...)`: peewee's own
    `in_(list)` builds a node per value, which costs more than the query itself for a few
    hundred thousand keys (an import's lookups, its customers' version bumps)."""
    return SQL("(" + ", ".join([db.param] * len(values)) + ")", values)


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


class Slot(Node):
    """A named parameter of a `prepared` query: compiled as a placeholder, bound per run.

    Pass the field it is compared with to get that field's conversion (`db_value`) at bind
    time, exactly as Peewee would have applied it to an inline value.
    """

    def __init__(self, name: str, field=None):
        super().__init__()
        self.name = name
        self.convert = field.db_value if field is not None else None

    def __sql__(self, ctx):
        # What `Context.value` does for a plain value, with the Slot itself as the param.
        ctx._values.append(self)
        return ctx.literal(ctx.state.param or "?")


class prepared:
    """A query built and compiled to SQL once per shape, then run with new values.

    Building a query is Peewee's main cost on a hot page: several hundred node visits for
    a joined select or an aggregate, every request, for SQL text that never changes. Wrap
    a builder whose variable values are `Slot`s; the arguments of the builder are the
    query's *shape* (say, how many sites a scope lists) and key the cache:

        _by_key = prepared(lambda: Session.select().where(Session.key == Slot("key")))
        session = _by_key.first(key=digest(value))

    Results come back through the built query's own cursor wrapper, so rows are model
    instances (or dicts/tuples) exactly as if the query had run the ordinary way. The
    compiled SQL is kept per database class: SQLite and PostgreSQL spell it differently.
    """

    # Shapes are few (scope sizes, tabs, sorts); past this many, compile without keeping.
    MAX_SHAPES = 512

    def __init__(self, build):
        self.build = build
        self.__doc__ = build.__doc__
        self._compiled = {}

    def _entry(self, shape):
        key = (type(db.obj), shape)
        entry = self._compiled.get(key)
        if entry is None:
            query = self.build(*shape)
            sql, params = db.get_sql_context().sql(query).query()
            # The last item is the cursor wrapper's column mapping, filled on first run.
            entry = [query, sql, tuple(params), None]
            # Two threads may compile the same shape at once; both results are identical.
            if len(self._compiled) < self.MAX_SHAPES:
                self._compiled[key] = entry
        return entry

    def execute(self, *shape, **values):
        """Run with `values` for the Slots; returns Peewee's cursor wrapper (iterable)."""
        entry = self._entry(shape)
        query, sql, params, mapping = entry
        bound = [
            (p.convert(values[p.name]) if p.convert else values[p.name])
            if isinstance(p, Slot)
            else p
            for p in params
        ]
        wrapper = query._get_cursor_wrapper(db.execute_sql(sql, bound))
        # Peewee works out, on each run, which result column goes to which model and field
        # (for a joined select, as long as the query itself). That depends only on the SQL
        # and the columns it returns, which are fixed here: work it out once and reuse it.
        if mapping is None:
            before = set(vars(wrapper))
            wrapper.initialize()
            entry[3] = {k: v for k, v in vars(wrapper).items() if k not in before}
        else:
            vars(wrapper).update(mapping)
        wrapper.initialized = True
        return wrapper

    def __call__(self, *shape, **values) -> list:
        """All rows, as a list."""
        return list(self.execute(*shape, **values))

    def first(self, *shape, **values):
        """The first row, or None."""
        for row in self.execute(*shape, **values):
            return row
        return None


MIGRATIONS_DIR = str(Path(__file__).with_name("migrations"))


def migrate() -> list[str]:
    """Apply pending numbered migrations in order; returns the names applied (idempotent)."""
    from playhouse.migrations import Runner

    with db.connection_context():
        return Runner(db.obj, directory=MIGRATIONS_DIR).up()
