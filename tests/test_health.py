"""Health checks: `/healthz` answers without the database, `/readyz` follows the database,
Redis and the worker heartbeat, and ordinary pages answer 503 + Retry-After, not a bare 500,
while the database is unreachable."""

import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from peewee import OperationalError

from portal.db import db, migrate
from portal.services import health, jobs
from portal.services.ratelimit import limiter

from .conftest import PG_URL, free_port


def _no_cookie(response) -> None:
    assert "Set-Cookie" not in response.headers


def test_liveness_answers_without_a_session_or_cookie(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    _no_cookie(response)


def test_readiness_reports_each_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ready" and body["failed"] == []
    assert body["checks"]["database"] == {"ok": True}
    assert "redis" not in body["checks"]  # memory:// storage: nothing to check
    # No worker has run in this fresh database: reported, but the host stays ready.
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["worker"]["last_run"] is None
    assert body["checks"]["worker"]["required"] is False
    assert response.headers["Cache-Control"] == "no-store"
    _no_cookie(response)


def test_worker_pass_records_the_heartbeat(app, runner, client):
    before = time.time()
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    last = jobs.last_run()
    assert last is not None and last.timestamp() >= int(before)
    worker = client.get("/readyz").json["checks"]["worker"]
    assert worker["ok"] is True
    assert datetime.fromisoformat(worker["last_run"]) == last
    assert worker["age_seconds"] <= 5


def test_stale_heartbeat_is_reported_but_does_not_fail_readiness(app, client):
    jobs.record_heartbeat(time.time() - 3600)
    response = client.get("/readyz")
    assert response.status_code == 200
    worker = response.json["checks"]["worker"]
    assert worker["ok"] is False
    assert worker["age_seconds"] >= 3600 and worker["stale_after_seconds"] == 300
    # A later pass overwrites the one row.
    jobs.record_heartbeat()
    assert client.get("/readyz").json["checks"]["worker"]["ok"] is True
    assert jobs.last_run() > datetime.fromtimestamp(time.time() - 60, UTC)


def test_health_checks_are_not_rate_limited(build_app):
    app = build_app(RATELIMIT_APPLICATION="2 per minute")
    client = app.test_client()
    try:
        assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 429]
        assert {client.get("/healthz").status_code for _ in range(5)} == {200}
        assert {client.get("/readyz").status_code for _ in range(5)} == {200}
    finally:
        # The limiter is one object per process and keeps the first application limit it
        # was given (and its counts): leave it as the other tests expect to find it.
        limiter.limit_manager.set_application_limits([])
        limiter.reset()


def _move(path, target) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(target.with_name(target.name + suffix))


def test_readiness_and_pages_follow_the_database_going_away_and_back(make_app, tmp_path):
    """503 with Retry-After while the SQLite file cannot be opened, 200 once it is back."""
    path = tmp_path / "live" / "portal.db"
    path.parent.mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{path}")
    with app.app_context():
        migrate()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    assert client.get("/login").status_code == 200

    # The database goes away (a lost volume): the file is moved off and something that
    # cannot be opened as a database takes its place; connections are opened anew.
    db.obj.close_all()
    _move(path, tmp_path / "away.db")
    path.mkdir()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    body = response.json
    assert body["status"] == "unavailable" and body["failed"] == ["database"]
    assert body["checks"]["database"]["ok"] is False
    assert str(tmp_path) not in response.get_data(as_text=True)  # no paths or hosts leak
    _no_cookie(response)
    assert client.get("/healthz").status_code == 200

    page = client.get("/login")
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "10"
    assert "briefly unavailable" in page.get_data(as_text=True)

    # Back again.
    path.rmdir()
    _move(tmp_path / "away.db", path)
    assert client.get("/readyz").status_code == 200
    assert client.get("/login").status_code == 200


def test_unreachable_postgresql_answers_503(make_app):
    """A PostgreSQL server that refuses connections: readiness and pages 503, liveness 200."""
    pytest.importorskip("psycopg2")
    app = make_app(DATABASE_URL=f"postgresql://portal@127.0.0.1:{free_port()}/portal")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["failed"] == ["database"]
    page = client.get("/login")
    assert page.status_code == 503 and page.headers["Retry-After"] == "10"


class Gate:
    """A TCP forwarder in front of PostgreSQL that can be shut (every connection dropped,
    new ones refused, as when the server goes down) and opened again."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self.sockets: list[socket.socket] = []
        self.listener = None

    def open(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def shut(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.sockets.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, target) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.postgresql
def test_postgresql_going_away_and_back(make_app):
    """The PostgreSQL server goes down under a running portal (pooled connections dropped,
    new ones refused): readiness and pages 503; once it is back, 200 again."""
    url = urlsplit(PG_URL)
    gate = Gate((url.hostname, url.port or 5432))
    gate.open()
    netloc = url.netloc.replace(f"{url.hostname}:{url.port}", f"127.0.0.1:{gate.port}")
    app = make_app(DATABASE_URL=url._replace(netloc=netloc).geturl())
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 200
        assert client.get("/login").status_code == 200

        gate.shut()
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json["failed"] == ["database"]
        assert ready.headers["Retry-After"] == "10"
        assert client.get("/healthz").status_code == 200
        page = client.get("/login")
        assert page.status_code == 503 and page.headers["Retry-After"] == "10"

        gate.open()
        statuses = [client.get("/readyz").status_code for _ in range(3)]
        assert statuses[-1] == 200, statuses
        assert client.get("/login").status_code == 200
    finally:
        gate.shut()
        db.obj.close_all()


@pytest.mark.parametrize(
    ("message", "unavailable"),
    [
        ("unable to open database file", True),
        ("database is locked", True),
        ("disk I/O error", True),
        ("no such table: invoice", False),
        ('near "SELEC": syntax error', False),
    ],
)
def test_only_unreachable_sqlite_errors_are_503(app, monkeypatch, message, unavailable):
    """SQLite's wording decides (on either test database: the check reads the message)."""
    monkeypatch.setattr(health, "is_sqlite", lambda: True)
    assert health.database_unavailable(OperationalError(message)) is unavailable
    # PostgreSQL's OperationalError is always about reaching the server.
    monkeypatch.setattr(health, "is_sqlite", lambda: False)
    assert health.database_unavailable(OperationalError(message)) is True


def test_a_bug_in_a_query_stays_500(build_app):
    """Only an unreachable database is a 503: a broken query is still an error page (500)."""
    app = build_app()

    @app.get("/broken")
    def broken():
        db.execute_sql("SELECT * FROM no_such_table")

    response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


def test_unreachable_redis_fails_readiness(build_app):
    pytest.importorskip("redis")
    port = free_port()
    app = build_app(RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["redis"]
    assert response.json["checks"]["database"]["ok"] is True


def test_reachable_redis_passes_readiness(build_app, tmp_path):
    pytest.importorskip("redis")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        app = build_app(RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}")
        response = app.test_client().get("/readyz")
        assert response.status_code == 200
        assert response.json["checks"]["redis"] == {"ok": True}
    finally:
        process.terminate()
        process.wait(5)


def test_staff_home_says_whether_the_worker_runs(app, client):
    """Issue 15: worker liveness in the back office, not only in /readyz."""
    from portal.models import Counter
    from portal.services import jobs

    from . import factories
    from .conftest import staff_login

    factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    page = client.get("/staff/").get_data(as_text=True)
    assert "The background worker" in page and "has never run" in page
    jobs.record_heartbeat()
    assert "Background worker: last ran" in client.get("/staff/").get_data(as_text=True)
    Counter.update(value=Counter.value - 3600).where(Counter.name == jobs.HEARTBEAT).execute()
    stale = client.get("/staff/").get_data(as_text=True)
    assert "has not run since" in stale
