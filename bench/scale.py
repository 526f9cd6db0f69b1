"""Customer pages at scale: p50/p95 under a mixed load, at two database sizes, on one app
host and on two.

    .venv/bin/python -m bench.scale --database-url 'postgresql://postgres@127.0.0.1/bench_{size}'

For each size (default 10,000 and 1,000,000 invoices over 1,000 customers; the signed-in
account holds 10,000 invoices at every size, see `bench/dataset.py`) the dataset is built in
its own EMPTY database (`{size}` in the URL is replaced by the size; the default is a SQLite
file per size in a temporary directory). Then, for one gunicorn host and for two hosts on
the same database (the clients split between them, one signed-in session per host),
`--clients` concurrent clients (threads) loop over a mix of the dashboard, the invoice list
(page 1 and a deep page), an invoice page and the statement for `--seconds`, and the run
reports each page's p50 and p95. Last, the large size's p50 over the small size's: the
pages read one account, so they should cost the same however big the database is
(target: within 1.2x). Results go to bench/SCALE.md.

`--workdir DIR` keeps the SQLite files (and a facts file per size) to reuse on the next
run; with PostgreSQL a database that already holds the dataset is reused when its facts
file is in the workdir.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import dataset
from .run import ROOT, SECRET, free_port, gunicorn, portal_env, request, sign_in

TARGET = 1.2
PAGES = ("Dashboard", "Invoice list, page 1", "Invoice list, deep page", "Invoice", "Statement")


def build(url: str, size: int) -> dict:
    """Migrate and fill one database in a child process (its memory goes with it)."""
    code = (
        "import json, sys, time\n"
        "from portal import create_app\n"
        "from portal.db import db, migrate\n"
        "from bench import dataset\n"
        f"app = create_app({{'DATABASE_URL': {url!r}, 'SECRET_KEY': {SECRET!r},"
        " 'SQLITE_SYNCHRONOUS': 'normal'})\n"
        "with app.app_context():\n"
        "    migrate()\n"
        "    db.connect(reuse_if_open=True)\n"
        "    started = time.perf_counter()\n"
        f"    facts = dataset.build(invoices={size})\n"
        "    facts['build_seconds'] = round(time.perf_counter() - started, 1)\n"
        "    print(json.dumps(facts))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def settle(url: str) -> None:
    """Vacuum, analyze and checkpoint a PostgreSQL database before it is measured, as a live
    database stands between its imports. Measured right after the 1M build (380 s of
    writes), the checkpoint flushing them ran during the load and made every page about 4x
    slower than at 10k, while one request at a time took the same 4.6 ms at both sizes."""
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True  # VACUUM cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")  # the bench's role is the database's superuser
    finally:
        connection.close()


def paths(facts: dict) -> dict[str, str]:
    from portal.ids import OpaqueIds

    detail = OpaqueIds(SECRET).encode("invoice", facts["detail_invoice_id"])
    deep = facts["big_account_invoices"] // 25 * 3 // 4
    return dict(
        zip(
            PAGES,
            (
                "/",
                "/invoices/?status=all",
                f"/invoices/?status=all&page={deep}",
                f"/invoices/{detail}",
                "/statements/",
            ),
            strict=True,
        )
    )


def mixed_load(ports: list[int], pages: dict, seconds: float, clients: int) -> dict:
    """`clients` threads, each signed in on its own host (round robin over `ports`), each
    requesting the pages in a random order until time is up; latencies (ms) by page."""
    sessions = [(port, sign_in(port, dataset.USER_EMAIL, dataset.USER_PASSWORD)) for port in ports]
    latencies = {label: [] for label in pages}
    errors = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def client(number: int) -> None:
        port, cookie = sessions[number % len(sessions)]
        rng = random.Random(number)
        labels = list(pages)
        mine = {label: [] for label in pages}
        while time.perf_counter() < end:
            label = rng.choice(labels)
            started = time.perf_counter()
            response, _ = request(port, pages[label], cookie)
            took = (time.perf_counter() - started) * 1000
            if response.status != 200:
                errors.append(f"{pages[label]}: HTTP {response.status}")
                return
            mine[label].append(took)
        with lock:
            for label, values in mine.items():
                latencies[label].extend(values)

    for port, cookie in sessions:  # warm each host's caches
        for label, path in pages.items():
            started = time.perf_counter()
            request(port, path, cookie)
            print(f"    {label}: {(time.perf_counter() - started) * 1000:.0f} ms cold", flush=True)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"errors under load: {errors[:5]}")
    result = {}
    for label, values in latencies.items():
        if not values:
            raise SystemExit(f"no {label} request finished in {seconds:g} s: make --seconds longer")
        values.sort()
        cuts = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
        result[label] = {"n": len(values), "p50": statistics.median(values), "p95": cuts[-1]}
    result["total"] = sum(r["n"] for r in result.values()) / seconds
    return result


def run_size(url: str, facts: dict, workdir: Path, options) -> dict:
    env = portal_env(url, workdir)
    pages = paths(facts)
    results = {}
    for hosts in (1, 2):
        ports = [free_port() for _ in range(hosts)]
        processes = [gunicorn("app:app", port, options.workers, env) for port in ports]
        try:
            results[hosts] = mixed_load(ports, pages, options.seconds, options.clients)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=15)
        print(f"  {facts['invoices']:,} invoices, {hosts} host(s): {results[hosts]}", flush=True)
    return results


def render(sizes: list[int], facts: dict, results: dict, options, engine: str):
    """The report (Markdown) and the worst large/small p50 ratio."""
    small, large = sizes[0], sizes[-1]
    lines = [
        "# Customer pages at scale",
        "",
        f"`python -m bench.scale` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{engine}, gunicorn with {options.workers} sync workers per host, "
        f"{options.clients} concurrent clients in a mixed load for {options.seconds:g} s, "
        f"loopback, {os.cpu_count()} CPUs (clients, hosts and database on one machine).",
        "",
        "Data: "
        + "; ".join(
            f"{facts[s]['invoices']:,} invoices ({facts[s]['lines']:,} lines, "
            f"{facts[s]['payments']:,} payments, built in {facts[s]['build_seconds']} s)"
            for s in sizes
        )
        + f"; 1,000 customers; the signed-in account holds "
        f"{facts[large]['big_account_invoices']:,} invoices.",
        "",
        "| page | hosts | "
        + " | ".join(f"{s:,}: p50 / p95 ms" for s in sizes)
        + f" | p50 {large:,} / {small:,} |",
        "|---|---:|" + "---:|" * len(sizes) + "---:|",
    ]
    worst = 0.0
    for hosts in (1, 2):
        for label in PAGES:
            cells = [
                f"{results[s][hosts][label]['p50']:.1f} / {results[s][hosts][label]['p95']:.1f}"
                for s in sizes
            ]
            ratio = results[large][hosts][label]["p50"] / results[small][hosts][label]["p50"]
            worst = max(worst, ratio)
            lines.append(f"| {label} | {hosts} | " + " | ".join(cells) + f" | {ratio:.2f} |")
        lines.append(
            f"| all pages, requests/s | {hosts} | "
            + " | ".join(f"{results[s][hosts]['total']:.0f}" for s in sizes)
            + " | |"
        )
    lines += ["", f"Worst p50 ratio: **{worst:.2f}** (target: at most {TARGET})."]
    return "\n".join(lines) + "\n", worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="with {size}: one EMPTY database per size")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers per host")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--results", default=str(ROOT / "bench" / "SCALE.md"))
    parser.add_argument("--workdir", help="keep (and reuse) the datasets here")
    options = parser.parse_args()

    sizes = sorted(int(s) for s in options.sizes.split(","))
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="doorstep-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    facts, results = {}, {}
    engine = "SQLite"
    for size in sizes:
        if options.database_url:
            url = options.database_url.replace("{size}", str(size))
            engine = "PostgreSQL"
        else:
            url = f"sqlite:///{workdir / f'bench-{size}.db'}"
        saved = workdir / f"facts-{size}.json"
        if saved.exists():
            facts[size] = json.loads(saved.read_text())
            print(f"Reusing {size:,} invoices in {url}", flush=True)
        else:
            print(f"Building {size:,} invoices in {url} ...", flush=True)
            facts[size] = build(url, size)
            saved.write_text(json.dumps(facts[size]))
        settle(url)
        results[size] = run_size(url, facts[size], workdir, options)
    report, worst = render(sizes, facts, results, options, engine)
    print()
    print(report)
    Path(options.results).write_text(report)
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
