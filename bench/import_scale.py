"""Import at scale: time and peak memory of `flask import invoices` with N rows, and how long
a payer waits meanwhile.

    python -m bench.import_scale --rows 1000000 [--database-url postgresql://...]

Steps, each a real `flask --app portal import` process on a new database (SQLite file by
default; an EMPTY PostgreSQL database with --database-url):

1. 1,000 customers; then N new invoices over them, with no quick-pay codes in the file
   (so the import generates and hashes N codes, as a first ERP export would);
2. the same file with every seventh total raised (N/7 updates, the rest unchanged, every
   customer touched) while a "payer" process keeps writing to an unchanged invoice of a
   customer the import touches (the write a payment makes: the invoice row and, through
   the billing-version trigger, its customer's row), and reports its longest wait.

Peak memory is the largest resident size among the import process and its children (the
hashing workers), from `getrusage(RUSAGE_CHILDREN)`. Results go to bench/IMPORT.md.
"""

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 1_000


def flask(env: dict, *args: str) -> float:
    """Run one `flask --app portal` command; returns its wall time in seconds."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "portal", *args],
        env=env,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def write_customers(path: Path) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["account_number", "name"])
        for n in range(CUSTOMERS):
            out.writerow([f"C{n:05d}", f"Customer {n}"])


def write_invoices(path: Path, rows: int, raised: bool = False) -> None:
    issue = date(2026, 1, 5)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["number", "account_number", "issue_date", "due_date", "total"])
        for n in range(rows):
            total = 100 + (n % 9000) / 10
            if raised and n % 7 == 0:
                total += 1
            day = issue + timedelta(days=n % 300)
            out.writerow(
                [
                    f"INV{n:08d}",
                    f"C{n % CUSTOMERS:05d}",
                    day.isoformat(),
                    (day + timedelta(days=30)).isoformat(),
                    f"{total:.2f}",
                ]
            )


PAYER = """
import os, sys, time
from portal import create_app
from portal.db import db, write_txn
from portal.models import Invoice
app = create_app()
with app.app_context():
    db.connect()
    target = Invoice.select(Invoice.id).where(Invoice.number == sys.argv[2]).scalar()
    worst, writes = 0.0, 0
    while not os.path.exists(sys.argv[1]):
        started = time.monotonic()
        with write_txn():
            Invoice.update(description=f"paid {writes}").where(Invoice.id == target).execute()
        worst = max(worst, time.monotonic() - started)
        writes += 1
        time.sleep(0.05)
    print(f"{worst:.3f} {writes}")
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="an EMPTY database (default: a new SQLite file)")
    parser.add_argument("--results", default=str(ROOT / "bench" / "IMPORT.md"))
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = options.database_url or f"sqlite:///{work / 'import.db'}"
        env = {
            **os.environ,
            "PORTAL_DATABASE_URL": url,
            "PORTAL_SECRET_KEY": "bench-import-" + "x" * 40,
            "PORTAL_INSTANCE_PATH": str(work),
        }
        flask(env, "init-db")
        write_customers(work / "customers.csv")
        flask(env, "import", "customers", str(work / "customers.csv"))
        write_invoices(work / "invoices.csv", options.rows)
        write_invoices(work / "update.csv", options.rows, raised=True)

        created = flask(env, "import", "invoices", str(work / "invoices.csv"))
        created_rss = peak_rss_mb()

        stop = work / "stop"
        # INV00000001 is repeated unchanged by the update file; INV00000000 (every seventh
        # from the first) is one it changes.
        payers = [
            subprocess.Popen(
                [sys.executable, "-c", PAYER, str(stop), number],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for number in ("INV00000001", "INV00000000")
        ]
        time.sleep(3)  # the payers are writing before the import starts
        updated = flask(env, "import", "invoices", str(work / "update.csv"))
        stop.touch()
        (worst, writes), (worst_changed, writes_changed) = (
            payer.communicate()[0].split() for payer in payers
        )
        again = flask(env, "import", "invoices", str(work / "update.csv"))

    engine = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    line = (
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {engine} | {options.rows:,} | "
        f"{created:.1f} | {updated:.1f} | {again:.1f} | {created_rss:.0f} | "
        f"{float(worst):.2f} ({writes} writes) | {float(worst_changed):.2f} ({writes_changed}) |\n"
    )
    results = Path(options.results)
    if not results.exists():
        results.write_text(HEADER)
    with results.open("a") as fh:
        fh.write(line)
    print(line, end="")
    return 0


HEADER = """# Import at scale

`python -m bench.import_scale --rows N [--database-url ...]`: 1,000 customers, then N new
invoices (codes generated and hashed), then the file again with every seventh total raised
(N/7 updates, every customer touched), while one payer keeps writing to an invoice of a
touched customer that the file repeats unchanged, and another to one the file changes.
Peak memory: the largest process of the import (hashing workers included). "again": the
update file once more, which changes nothing. "payer waits": the longest single write of
each payer: of the unchanged invoice, and (changed) of the invoice the file changes, which
waits for the import's locks on what it changes.

| when (UTC) | database | rows | create s | update s | again s | peak MB | payer waits s | changed |
|---|---|---:|---:|---:|---:|---:|---|---|
"""


if __name__ == "__main__":
    sys.exit(main())
