"""Load-test the billing pages at scale next to a bare Flask twin, and print the ratios.

    .venv/bin/python -m bench.run                   # SQLite in a temporary directory
    .venv/bin/python -m bench.run --database-url postgresql://postgres@127.0.0.1/bench

Steps: build 1,000 customers / 100,000 invoices with `bench/dataset.py` (timed), serve the
portal with gunicorn on loopback, serve `bench/bare.py` (a bare Flask app returning a page
of exactly the same size for each path) and `bench/floor.py` (the portal's templates
rendering each page from a kept context, nothing else) with the same gunicorn settings,
sign in once, then hit each page from several client processes for a fixed time and report
requests per second and p95 latency, the portal/bare ratio (target: at least 0.35) and the
templates-alone/bare ratio (the ceiling for pages rendered with these templates).
"""

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key-0123456789-not-for-production"
TARGET = 0.35


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(url: str) -> dict:
    """Migrate and fill the database (in this process); returns the dataset facts."""
    from portal import create_app
    from portal.db import db, migrate
    from portal.models import Invoice

    from . import dataset

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "SQLITE_SYNCHRONOUS": "normal"})
    with app.app_context():
        migrate()
        db.connect(reuse_if_open=True)
        if Invoice.select().exists():
            raise SystemExit("The benchmark database is not empty; use a fresh one.")
        started = time.perf_counter()
        facts = dataset.build()
        facts["build_seconds"] = round(time.perf_counter() - started, 1)
        db.close()
    return facts


def portal_env(url: str, workdir: Path) -> dict:
    """The portal's environment for a benchmark host on `url`."""
    return {
        "PORTAL_DATABASE_URL": url,
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_INSTANCE_PATH": str(workdir / "instance"),
        "PORTAL_SQLITE_SYNCHRONOUS": "normal",
        "PORTAL_MAIL_SEND_ON_COMMIT": "false",
    }


def gunicorn(app_path: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app_path,
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"gunicorn {app_path} did not start")


def request(port: int, path: str, cookie: str = "", method="GET", body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    all_headers = {"Cookie": cookie} if cookie else {}
    all_headers.update(headers or {})
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def cookies(response, previous: str = "") -> str:
    """The Cookie header after a response: earlier cookies updated by its Set-Cookie lines."""
    jar = dict(pair.split("=", 1) for pair in previous.split("; ") if "=" in pair)
    for line in response.msg.get_all("Set-Cookie") or []:
        name, _, value = line.split(";")[0].partition("=")
        jar[name.strip()] = value
    return "; ".join(f"{k}={v}" for k, v in jar.items())


def sign_in(port: int, email: str, password: str) -> str:
    """Sign in through the real form; returns the session cookie header."""
    response, page = request(port, "/login")
    cookie = cookies(response)
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        rb'name="csrf_token" value="([^"]+)"', page
    )
    body = urlencode({"email": email, "password": password, "csrf_token": token.group(1).decode()})
    response, _ = request(
        port,
        "/login",
        cookie,
        "POST",
        body,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    if response.status != 303:
        raise SystemExit(f"sign-in failed: {response.status}")
    cookie = cookies(response, cookie)
    # Follow the redirect as a browser does and keep what it sets: the first page after
    # sign-in adds the CSRF secret to the session. A client replaying the pre-redirect
    # cookie would make every request mint and save a new session.
    response, _ = request(port, response.getheader("Location"), cookie)
    return cookies(response, cookie)


def _client(args):
    port, path, cookie, seconds = args
    latencies = []
    end = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        if started >= end:
            break
        response, _ = request(port, path, cookie)
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


def best_latency(port: int, path: str, cookie: str, count: int = 30) -> float:
    """The fastest of `count` requests sent one at a time (ms): the cost of one page with
    no queueing, which a busy machine distorts far less than throughput."""
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        request(port, path, cookie)
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000


def load(port: int, path: str, cookie: str, seconds: float, clients: int) -> dict:
    """Requests per second and p95 latency (ms) of one page under `clients` concurrent loops."""
    _client((port, path, cookie, 0.5))  # warm up caches and connections
    with multiprocessing.Pool(clients) as pool:
        started = time.perf_counter()
        results = pool.map(_client, [(port, path, cookie, seconds)] * clients)
        elapsed = time.perf_counter() - started
    latencies = sorted(x for result in results for x in result)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    return {"rps": len(latencies) / elapsed, "p95_ms": p95 * 1000, "n": len(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an EMPTY database (default: a new SQLite file)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both apps")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per page")
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--workdir", help="keep the database here and reuse it on the next run")
    options = parser.parse_args()

    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="doorstep-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = options.database_url or f"sqlite:///{workdir / 'bench.db'}"
    saved = workdir / "facts.json"
    if options.workdir and saved.exists():
        facts = json.loads(saved.read_text())
        print(f"Reusing the dataset in {url}", flush=True)
    else:
        print(f"Building the dataset in {url} ...", flush=True)
        facts = build(url)
        saved.write_text(json.dumps(facts))
    print(
        f"  {facts['customers']:,} customers, {facts['invoices']:,} invoices, "
        f"{facts['lines']:,} lines, {facts['payments']:,} payments "
        f"in {facts['build_seconds']} s",
        flush=True,
    )
    from portal.ids import OpaqueIds

    from . import dataset

    # Invoice pages are addressed by opaque id (portal/ids.py), made with the portal's key.
    detail = OpaqueIds(SECRET).encode("invoice", facts["detail_invoice_id"])
    deep = facts["big_account_invoices"] // 25 * 3 // 4
    pages = [
        ("Dashboard", "/"),
        ("Invoice list, page 1", "/invoices/?status=all"),
        (f"Invoice list, page {deep}", f"/invoices/?status=all&page={deep}"),
        ("Invoice detail", f"/invoices/{detail}"),
    ]
    env = portal_env(url, workdir)
    portal_port, bare_port, floor_port = free_port(), free_port(), free_port()
    processes = [gunicorn("app:app", portal_port, options.workers, env)]
    try:
        cookie = sign_in(portal_port, dataset.USER_EMAIL, dataset.USER_PASSWORD)
        sizes = {}
        for _, path in pages:
            response, body = request(portal_port, path, cookie)
            assert response.status == 200, (path, response.status)
            sizes[path] = len(body)
        (workdir / "sizes.json").write_text(json.dumps(sizes))
        processes.append(
            gunicorn(
                "bench.bare:app",
                bare_port,
                options.workers,
                {"BENCH_SIZES": str(workdir / "sizes.json")},
            )
        )
        processes.append(
            gunicorn(
                "bench.floor:app",
                floor_port,
                options.workers,
                {**env, "BENCH_PATHS": json.dumps([p for _, p in pages]), "BENCH_COOKIE": cookie},
            )
        )
        rows = []
        for label, path in pages:
            portal = load(portal_port, path, cookie, options.seconds, options.clients)
            bare = load(bare_port, path, "", options.seconds, options.clients)
            floor = load(floor_port, path, cookie, options.seconds, options.clients)
            portal["best_ms"] = best_latency(portal_port, path, cookie)
            bare["best_ms"] = best_latency(bare_port, path, "")
            ratio = portal["rps"] / bare["rps"]
            floor["ratio"] = floor["rps"] / bare["rps"]
            rows.append((label, path, sizes[path], portal, bare, ratio, floor))
            print(
                f"  {label:<24} portal {portal['rps']:7.1f} req/s p95 {portal['p95_ms']:6.1f} ms"
                f" | bare {bare['rps']:7.1f} req/s p95 {bare['p95_ms']:6.1f} ms"
                f" | ratio {ratio:.2f} | templates alone {floor['ratio']:.2f}"
                f" | one at a time {portal['best_ms']:.1f} vs {bare['best_ms']:.1f} ms",
                flush=True,
            )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=15)
    report = render(rows, facts, options, url)
    print()
    print(report)
    Path(options.results).write_text(report)
    if not options.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(row[5] >= TARGET for row in rows) else 1


def render(rows, facts, options, url) -> str:
    engine = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    lines = [
        "# Billing benchmark results",
        "",
        f"`python -m bench.run` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{engine}, gunicorn with {options.workers} sync workers for both apps, "
        f"{options.clients} client processes, {options.seconds:g} s per page, loopback, "
        f"{os.cpu_count()} CPUs.",
        "",
        f"Data: {facts['customers']:,} customers, {facts['invoices']:,} invoices, "
        f"{facts['lines']:,} lines, {facts['payments']:,} payments, built in "
        f"{facts['build_seconds']} s; the signed-in user's account has "
        f"{facts['big_account_invoices']:,} invoices.",
        "",
        "| page | bytes | portal req/s | portal p95 ms | bare req/s | bare p95 ms | ratio "
        "| templates alone req/s | templates alone ratio "
        "| best single request, portal / bare ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, _, size, portal, bare, ratio, floor in rows:
        lines.append(
            f"| {label} | {size:,} | {portal['rps']:.1f} | {portal['p95_ms']:.1f} | "
            f"{bare['rps']:.1f} | {bare['p95_ms']:.1f} | **{ratio:.2f}** | "
            f"{floor['rps']:.1f} | {floor['ratio']:.2f} | "
            f"{portal['best_ms']:.1f} / {bare['best_ms']:.1f} |"
        )
    lines += [
        "",
        f"Target: every ratio at least {TARGET} (portal throughput / bare Flask throughput "
        "for a page of the same size, measured in the same run).",
        "",
        "Templates alone (`bench/floor.py`): the same page rendered by the portal's own "
        "templates from the context one real request built, kept in memory — no database, "
        "session lookup, access check or hook — served the same way. It is the ceiling for "
        "any implementation that renders these pages with these templates.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
