"""The back office at scale: the staff invoice, payment and customer lists and their
searches at two database sizes.

    .venv/bin/python -m bench.staff_search --database-url 'postgresql://postgres@127.0.0.1/bench_{size}'

Reads the databases `bench.scale` built (the same `{size}` URLs; build them with it first,
`--workdir` keeps them). Each search runs the staff pages' own code,
`backoffice.invoice_page` (or `payment_page`, or `search_customers` and `paginate`) for
page 1, rows fetched, in one process per size; the median of `--repeat` runs after one
warm-up, sizes side by side, and the large size's median over the small size's (target:
within 1.2x). Results go to bench/STAFF.md.

The dataset: 1,000 customers named "Bench Customer N Ltd" (account B0000N), the first
"Atlas Wholesale Group" holding 10,000 invoices at every size; every invoice's description
is "Monthly service and supplies", so "supplies" matches them all.
"""

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from .run import ROOT, SECRET

TARGET = 1.2
SEARCHES = (
    ("invoices", "one invoice number", "INV-0004242", ""),
    ("invoices", "an account number", "B00042", ""),
    ("invoices", "the big account's name (10,000 invoices)", "Atlas", ""),
    ("invoices", "a name matching 111 customers", "Customer 1", ""),
    ("invoices", "a description every invoice has", "supplies", ""),
    ("invoices", "nothing matches", "nothing like it", ""),
    ("invoices", "the unfiltered list", "", ""),
    ("invoices", "the overdue list", "", "overdue"),
    ("payments", "payments: one receipt number", "R-0004242", ""),
    ("payments", "payments: a customer's name", "Customer 42 ", ""),
    ("payments", "payments: nothing matches", "nothing like it", ""),
    ("payments", "payments: the unfiltered list", "", ""),
    ("customers", "customers: the unfiltered list", "", ""),
    ("customers", "customers: a name", "Customer 42", ""),
)

MEASURE = """
import json, statistics, sys, time
from datetime import date
from portal import create_app
from portal.db import db
from portal.services import backoffice

searches, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
app = create_app({"DATABASE_URL": sys.argv[3], "SECRET_KEY": sys.argv[4]})
today = date(2026, 6, 1)
out = {}
with app.app_context():
    db.connect(reuse_if_open=True)
    for kind, label, q, state in searches:
        times = []
        for _ in range(repeat + 1):
            started = time.perf_counter()
            if kind == "invoices":
                page = backoffice.invoice_page(q, state, today, 1)
                rows = [(i.number, i.customer.name) for i in page.rows]
            elif kind == "payments":
                page = backoffice.payment_page(1, q=q, status=state)
                rows = [(p.receipt_number, p.customer.name) for p in page.rows]
            else:
                page = backoffice.paginate(backoffice.search_customers(q), 1)
                rows = [c.name for c in page.rows]
            times.append((time.perf_counter() - started) * 1000)
        out[label] = {"ms": statistics.median(times[1:]), "total": page.total,
                      "capped": page.capped, "rows": len(rows)}
print(json.dumps(out))
"""


def measure(url: str, repeat: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(SEARCHES), str(repeat), url, SECRET],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="with {size}, as bench.scale")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--results", default=str(ROOT / "bench" / "STAFF.md"))
    options = parser.parse_args()
    small, large = (int(s) for s in options.sizes.split(","))
    found = {
        size: measure(options.database_url.format(size=size), options.repeat)
        for size in (small, large)
    }

    def shown(entry):
        total = f"{entry['total']:,}" + ("+" if entry["capped"] else "")
        return f"{entry['ms']:.1f} ms ({total})"

    lines = [
        f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {small:,} vs {large:,} invoices\n\n",
        f"| staff list or search | {small:,} | {large:,} | ratio |\n|---|---:|---:|---:|\n",
    ]
    worst = 0.0
    for _kind, label, _q, _state in SEARCHES:
        a, b = found[small][label], found[large][label]
        ratio = b["ms"] / a["ms"] if a["ms"] else float("inf")
        worst = max(worst, ratio)
        lines.append(f"| {label} | {shown(a)} | {shown(b)} | {ratio:.2f} |\n")
    verdict = "within" if worst <= TARGET else "over"
    lines.append(f"\nWorst ratio {worst:.2f} ({verdict} the {TARGET}x target).\n")
    results = Path(options.results)
    if not results.exists():
        results.write_text(HEADER)
    with results.open("a") as fh:
        fh.writelines(lines)
    print("".join(lines))
    return 0


HEADER = """# The back office at scale

`python -m bench.staff_search --database-url 'postgresql://.../bench_{size}'` (databases
built by `python -m bench.scale`, vacuumed and analyzed): each staff list's page 1 with its
count, median of 5 runs in one process, at 10k and 1M invoices. In brackets: what the pager
says (a list counts to 10,000, a search to 1,000: "10,000+", "1,000+").
"""


if __name__ == "__main__":
    sys.exit(main())
