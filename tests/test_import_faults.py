"""A big import killed while its worker processes hash quick-pay codes: the real `flask
import` command in a process of its own, SIGKILLed mid-import, leaves no process behind
(each one held ~130 MB forever) and nothing written."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has let go of its memory: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def portal_env(tmp_path):
    """The environment of a portal on a SQLite file of its own (on both test runs), with its
    schema and one customer, and production-strength argon2 (so hashing takes a while)."""
    env = {
        **os.environ,
        "PORTAL_INSTANCE_PATH": str(tmp_path / "instance"),
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "PORTAL_SECRET_KEY": "import-kill-test-secret-key-0123456789",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PORTAL_TEST_DATABASE_URL", None)

    def flask(*args, check=True):
        return subprocess.run(
            [PYTHON, "-m", "flask", "--app", "portal", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    flask("init-db")
    customers = tmp_path / "customers.csv"
    customers.write_text("account_number,name\nACME01,Acme\n")
    flask("import", "customers", str(customers))
    return env, flask


def test_a_killed_import_leaves_no_hashing_process_behind(portal_env, tmp_path):
    """Finding: SIGKILL of `flask import invoices` left its hashing processes running for
    good. Every process the import started goes within seconds of its death."""
    env, _ = portal_env
    path = tmp_path / "invoices.csv"
    rows = [f"K{n:05d},ACME01,2026-01-05,2026-02-04,{n}.00" for n in range(1, 30001)]
    path.write_text("number,account_number,issue_date,due_date,total\n" + "\n".join(rows) + "\n")

    importer = subprocess.Popen(
        [PYTHON, "-m", "flask", "--app", "portal", "import", "invoices", str(path)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:
        # Hashing has begun once the worker processes are up (two or more below the import).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and importer.poll() is None:
            children |= descendants(importer.pid)
            if len([pid for pid in children if alive(pid)]) >= 3:
                time.sleep(0.2)
                children |= descendants(importer.pid)
                break
            time.sleep(0.05)
        assert importer.poll() is None, "the import ended before it could be killed"
        assert len(children) >= 3, children
    finally:
        importer.send_signal(signal.SIGKILL)
        importer.wait()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    survivors = [pid for pid in children if alive(pid)]
    for pid in survivors:  # the test cleans up what the fault left
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"{len(survivors)} process(es) outlived the killed import"

    # All or nothing: the killed import wrote no invoice.
    with sqlite3.connect(tmp_path / "portal.db") as conn:
        assert conn.execute("SELECT count(*) FROM invoice").fetchone()[0] == 0
