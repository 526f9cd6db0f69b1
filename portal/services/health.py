"""Health of the process and what it depends on: the database, Redis, the worker.

`/healthz` (liveness) asks nothing of this module: a process that answers is alive.
`/readyz` (readiness) runs `readiness()`: the database and, when the rate limits are shared
through Redis, Redis must answer, or the host is taken out of the load balancer (503). The
worker's heartbeat is reported but never fails readiness: a stopped worker delays mail and
reconciliation, and taking every web host out of service would not bring it back; it turns
a delay into an outage. Operators alert on `checks.worker.ok` instead (docs/operations.md).
"""

import logging
import sqlite3
import time
from datetime import UTC, datetime
from urllib.parse import quote

from peewee import InterfaceError, OperationalError

from ..db import db, is_sqlite
from . import jobs

log = logging.getLogger(__name__)

# SQLite errors that mean "the file cannot be reached or written now", not a bug in a query.
SQLITE_UNAVAILABLE = (
    "unable to open database file",
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "readonly database",
)


def database_unavailable(error: Exception) -> bool:
    """True when `error` says the database cannot be reached (answer 503, not 500).

    PostgreSQL's OperationalError is always about the server or the connection (refused,
    dropped, a statement or lock timeout); SQLite also uses it for a missing table or
    column, which is a bug and stays a 500.
    """
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    if is_sqlite():
        text = str(error).lower()
        return any(marker in text for marker in SQLITE_UNAVAILABLE)
    return True


def check_database(url: str) -> str | None:
    """None when the database answers a cheap query, else what went wrong.

    On SQLite the file is also opened anew (read-write, never created): pooled connections
    keep a deleted or unmounted file open and would still answer.
    """
    try:
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///").split("?", 1)[0]
            probe = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=2)
            try:
                probe.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            finally:
                probe.close()
        with db.connection_context():
            db.execute_sql("SELECT 1").fetchall()
    except Exception as error:  # any failure is a failed check, named in the answer
        return _describe(error)
    return None


def check_redis(url: str) -> str | None:
    """None when Redis answers PING within a second, else what went wrong."""
    try:
        import redis  # only installed with the [redis] extra
    except ImportError:
        return "the redis package is not installed (pip install 'doorstep[redis]')"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:
        return _describe(error)
    return None


def worker_status(stale_after: int, now: float | None = None) -> dict:
    """The worker's last pass, how long ago, and whether that is recent enough."""
    try:
        with db.connection_context():
            last = jobs.last_run()
    except Exception as error:
        return {"ok": False, "last_run": None, "error": _describe(error)}
    if last is None:
        return {"ok": False, "last_run": None, "stale_after_seconds": stale_after}
    age = int((now if now is not None else time.time()) - last.timestamp())
    return {
        "ok": age <= stale_after,
        "last_run": last.isoformat(),
        "age_seconds": age,
        "stale_after_seconds": stale_after,
    }


def readiness(config) -> tuple[bool, dict]:
    """Run every check; returns (ready, the JSON body naming each check and what failed)."""
    checks = {}
    error = check_database(config["DATABASE_URL"])
    checks["database"] = {"ok": error is None, **({"error": error} if error else {})}
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "")
    if storage.startswith(("redis://", "rediss://")):
        error = check_redis(storage)
        checks["redis"] = {"ok": error is None, **({"error": error} if error else {})}
    if checks["database"]["ok"]:
        checks["worker"] = worker_status(int(config["WORKER_STALE_SECONDS"]))
    else:
        checks["worker"] = {"ok": False, "last_run": None, "error": "database unavailable"}
    checks["worker"]["required"] = False
    failed = [name for name, check in checks.items() if not check["ok"] and name != "worker"]
    body = {
        "status": "unavailable" if failed else "ready",
        "failed": failed,
        "checks": checks,
        "time": datetime.now(UTC).isoformat(),
    }
    return not failed, body


def _describe(error: Exception) -> str:
    """The error's kind for the JSON answer, which anyone may read; the message (host names,
    user names) goes to the log only."""
    log.warning("readiness check failed: %s: %s", type(error).__name__, error)
    return type(error).__name__
