"""Fixtures in the Flask-tutorial shape: `app`, `client`, `runner`, plus a real SMTP server.

Every test gets a fresh database built by the migrations: on SQLite a copy of a file the
migrations built once per run, on PostgreSQL (`PORTAL_TEST_DATABASE_URL`) the same schema
with every table truncated.
"""

import os
import shutil
import socket
import threading
import time
from contextlib import ExitStack
from email import message_from_bytes, policy
from email.contentmanager import ContentManager, raw_data_manager

import pytest
from aiosmtpd.controller import Controller
from flask.globals import _cv_app
from flask.testing import FlaskClient

from portal import create_app
from portal.db import db, is_sqlite, migrate, open_database

from . import factories

PG_URL = os.environ.get("PORTAL_TEST_DATABASE_URL", "")


def _plain_text_of(message, *args, **kwargs):
    return message.get_body(("plain",)).get_content(*args, **kwargs)


# Every email has an HTML part beside its plain text (multipart/alternative); a test reading
# `message.get_content()` reads the plain text, as a text-only mail client would.
TEXT_FIRST = ContentManager()
TEXT_FIRST.get_handlers = dict(raw_data_manager.get_handlers)
TEXT_FIRST.set_handlers = dict(raw_data_manager.set_handlers)
TEXT_FIRST.add_get_handler("multipart/alternative", _plain_text_of)
MAIL_POLICY = policy.default.clone(content_manager=TEXT_FIRST)


class Mailbox:
    """An aiosmtpd handler that keeps what arrives, parsed."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=MAIL_POLICY)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def clear(self):
        with self.lock:
            self.messages.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0):
        """Wait until `count` messages arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")

    def to(self, address: str):
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server():
    mailbox = Mailbox()
    mailbox.port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def mailbox(smtp_server):
    smtp_server.clear()
    return smtp_server


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """Run the migrations once: into a template SQLite file, or into the PostgreSQL test DB."""
    if PG_URL:
        database = open_database(PG_URL)
        db.initialize(database)
        with db.connection_context():
            db.execute_sql("DROP SCHEMA public CASCADE")
            db.execute_sql("CREATE SCHEMA public")
        migrate()
        with db.connection_context():
            tables = [t for t in database.get_tables() if t != "schema_migration"]
        database.close_all()
        return {"tables": tables}
    path = tmp_path_factory.mktemp("template") / "portal.db"
    db.initialize(open_database(f"sqlite:///{path}"))
    migrate()
    # Closing every pooled connection checkpoints the WAL into the file that tests copy.
    db.obj.close_all()
    return {"path": path}


def _empty_postgresql(tables):
    """Empty the tables an earlier test wrote to and restart the sequences it used.

    As `TRUNCATE ... RESTART IDENTITY` would, at a tenth of its cost: a TRUNCATE of every
    table gives each a new file (about 150 ms a test), while most tests touch a few tables.
    With `session_replication_role = replica` no foreign-key or other trigger fires, so the
    rows go in any order.
    """
    database = open_database(PG_URL)
    with database.connection_context(), database.atomic():
        probe = " UNION ALL ".join(
            f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables
        )
        dirty = [row[0] for row in database.execute_sql(probe)]
        if dirty:
            database.execute_sql("SET LOCAL session_replication_role = replica")
            for table in dirty:
                database.execute_sql(f'DELETE FROM "{table}"')
        database.execute_sql(
            "SELECT setval(format('%%I.%%I', schemaname, sequencename), start_value, false)"
            " FROM pg_sequences WHERE last_value IS NOT NULL AND schemaname = 'public'"
            " AND sequencename <> 'schema_migration_id_seq'"
        )
    database.close_all()


def test_config(tmp_path, template_db, smtp_server) -> dict:
    config = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret-key-not-for-production",
        "WTF_CSRF_ENABLED": False,
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 8,
        "MAIL_URL": f"smtp://127.0.0.1:{smtp_server.port}",
        "MAIL_SEND_ON_COMMIT": "sync",
        "PAYMENT_PROVIDERS": "offline,test-checkout",
        "BASE_URL": "http://localhost",
        # Durability against power loss is tested once (test_foundation); the rest of the
        # suite need not wait for an fsync per commit.
        "SQLITE_SYNCHRONOUS": "normal",
        # Staff sign in with the password alone unless they set up an authenticator app;
        # tests/test_staff_two_step.py runs the default (`required`) end to end.
        "STAFF_MFA": "optional",
    }
    if PG_URL:
        config["DATABASE_URL"] = PG_URL
    else:
        target = tmp_path / "portal.db"
        shutil.copy(template_db["path"], target)
        config["DATABASE_URL"] = f"sqlite:///{target}"
    return config


class RequestClient(FlaskClient):
    """A test client whose every request gets its own app context, `g` and connection.

    Fixtures keep an app context pushed so tests can use the models; without this, Flask
    would reuse that context for requests and `g` (Flask-Login's cached user, the settings,
    the outbox ids) would leak from one request into the next, which never happens in
    production.
    """

    def open(self, *args, **kwargs):
        token = _cv_app.set(None)
        try:
            return super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)


@pytest.fixture
def make_app(tmp_path, template_db, smtp_server):
    """Build an app with extra config; the database is fresh for each test."""
    if PG_URL:
        _empty_postgresql(template_db["tables"])
    apps = []

    def build(**overrides):
        config = test_config(tmp_path, template_db, smtp_server)
        config.update(overrides)
        app = create_app(config)
        app.test_client_class = RequestClient
        apps.append(app)
        return app

    yield build
    if not db.is_closed():
        db.close()
    if hasattr(db.obj, "close_all"):
        db.obj.close_all()


@pytest.fixture
def build_app(make_app, mailbox):
    """Build this test's one app with extra config, its context pushed (instead of `app`)."""
    stack = ExitStack()

    def build(**config):
        app = make_app(**config)
        stack.enter_context(app.app_context())
        db.connect(reuse_if_open=True)
        return app

    yield build
    stack.close()
    if not db.is_closed():
        db.close()


@pytest.fixture
def app(make_app, mailbox):
    app = make_app()
    with app.app_context():
        db.connect(reuse_if_open=True)
        yield app
        if not db.is_closed():
            db.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def query_plan(query, *off: str) -> str:
    """The database's plan of a Peewee query, as one string: SQLite's EXPLAIN QUERY PLAN, or
    PostgreSQL's EXPLAIN with sequential scans (and the `off` plan types: "indexscan", …)
    turned off, since on a test's tiny tables a scan is cheapest and the question is whether
    an index can serve."""
    sql, params = query.sql()
    if db.is_closed():
        db.connect()
    if is_sqlite():
        return " | ".join(
            str(row[-1]) for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params)
        )
    settings = ("seqscan", *off)
    for name in settings:
        db.execute_sql(f"SET enable_{name} = off")
    try:
        return " ".join(row[0] for row in db.execute_sql("EXPLAIN " + sql, params))
    finally:
        for name in settings:
            db.execute_sql(f"SET enable_{name} = on")


def search_plan(search, marker: str, monkeypatch) -> str:
    """PostgreSQL's plan (sequential scans off, as `query_plan`) of the statement that
    `search()` runs whose SQL holds `marker`: the staff searches read their matches in one
    statement of their own (`backoffice._hits`) before the page's rows."""
    statements = []
    execute_sql = db.obj.execute_sql

    def recorded(sql, params=None, *args, **kwargs):
        statements.append((sql, params))
        return execute_sql(sql, params, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(db.obj, "execute_sql", recorded)
        search()
    (sql, params), *_ = [(s, p) for s, p in statements if marker in s]
    db.execute_sql("SET enable_seqscan = off")
    try:
        return " ".join(row[0] for row in db.execute_sql("EXPLAIN " + sql, params))
    finally:
        db.execute_sql("SET enable_seqscan = on")


HX = {"HX-Request": "true"}


@pytest.fixture
def hx():
    """Headers of a targeted htmx request."""
    return dict(HX)


def login(client, email, password=factories.PASSWORD):
    """Sign a portal user in through the real form."""
    return client.post("/login", data={"email": email, "password": password})


def staff_login(client, email, password=factories.PASSWORD):
    """Sign a staff user in through the real form."""
    return client.post("/staff/login", data={"email": email, "password": password})


def pytest_collection_modifyitems(config, items):
    """Tests of PostgreSQL itself (`@pytest.mark.postgresql`) belong to the PostgreSQL run
    (PORTAL_TEST_DATABASE_URL, as `.ci/run` does): the SQLite run deselects them, so no run
    reports a skipped test."""
    if PG_URL:
        return
    kept = [item for item in items if item.get_closest_marker("postgresql") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
