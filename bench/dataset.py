"""Build the benchmark database: 1,000 customers, 100,000 invoices (or any number from
10,000 up), their lines and payments.

Rows go in with `insert_many` in large batches inside a few write transactions. Every
invoice shares one precomputed quick-pay hash and sealed code: hashing 100,000 codes would
measure argon2, not the portal. The signed-in benchmark user belongs to the biggest
account (10,000 invoices, most of them paid, like a real customer's history), so its list
pages, deep pages and aggregates are the expensive case, not the average one.
"""

import random
from datetime import UTC, date, datetime, timedelta

from portal.db import db, is_sqlite, write_txn
from portal.models import (
    Contact,
    Counter,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentApplication,
    PortalUser,
    Site,
)
from portal.security import hash_code, hash_secret, new_quick_pay_code, new_stamp, seal

CUSTOMERS = 1_000
INVOICES = 100_000
BIG_ACCOUNT_INVOICES = 10_000
USER_EMAIL = "bench@example.com"
USER_PASSWORD = "bench password 12345"
BATCH = 1_000
FLUSH = 50_000  # invoices generated before they are written


def _chunks(rows, size=BATCH):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert(model, rows) -> None:
    for chunk in _chunks(rows):
        model.insert_many(chunk).execute()


def _invoice_counts(rng, invoices: int) -> list[int]:
    """Invoices per customer: one big account (always BIG_ACCOUNT_INVOICES, so its pages are
    the same at every size), the rest spread unevenly around the mean (none when the big
    account holds them all)."""
    rest = invoices - BIG_ACCOUNT_INVOICES
    weights = [rng.paretovariate(2.5) for _ in range(CUSTOMERS - 1)]
    scale = rest / sum(weights)
    floor = 1 if rest >= CUSTOMERS - 1 else 0
    counts = [max(floor, int(w * scale)) for w in weights]
    counts[0] += rest - sum(counts)  # exact total
    return [BIG_ACCOUNT_INVOICES, *counts]


def build(today: date | None = None, seed: int = 7, invoices: int = INVOICES) -> dict:
    """Fill an empty, migrated database with `invoices` invoices (at least
    BIG_ACCOUNT_INVOICES); returns what the load run needs to know.

    Rows are generated and written a batch at a time (one transaction per FLUSH invoices),
    so a million invoices need no more memory than a hundred thousand."""
    rng = random.Random(seed)
    today = today or date.today()
    now = datetime.now(UTC)
    code = new_quick_pay_code()
    code_hash, code_sealed = hash_code(code), seal(code)

    customers, sites = [], []
    for n in range(1, CUSTOMERS + 1):
        customers.append(
            {
                "id": n,
                "account_number": f"B{n:05d}",
                "name": f"Bench Customer {n} Ltd" if n > 1 else "Atlas Wholesale Group",
                "email": f"ap{n}@bench.example",
                "address": f"{n} Market Street\nSpringfield",
                "created_at": now,
                "updated_at": now,
            }
        )
        sites.append({"id": n, "customer": n, "site_code": "MAIN", "name": "Head office"})
    with write_txn():
        _insert(Customer, customers)
        _insert(Site, sites)
        contact = Contact.create(
            customer=1, site=None, email=USER_EMAIL, first_name="Robin", last_name="Bench"
        )
        PortalUser.create(
            contact=contact,
            roles="invoices,statements,quotes,orders,cases,company_admin",
            status="active",
            all_sites=True,
            password_hash=hash_secret(USER_PASSWORD),
            auth_stamp=new_stamp(),
        )

    batch = {Invoice: [], InvoiceLine: [], Payment: [], PaymentApplication: []}
    counted = {model: 0 for model in batch}
    detail_invoice_id = None

    def flush() -> None:
        with write_txn():
            for model, rows in batch.items():
                _insert(model, rows)
                counted[model] += len(rows)
                rows.clear()

    invoice_id = line_id = payment_id = 0
    for customer_id, count in enumerate(_invoice_counts(rng, invoices), start=1):
        for _ in range(count):
            invoice_id += 1
            issue = today - timedelta(days=int(rng.triangular(0, 1095, 0)))
            due = issue + timedelta(days=30)
            total = rng.randrange(5_000, 500_000)
            age = (today - issue).days
            # Old invoices are nearly all paid; recent ones mostly open; some part-paid.
            roll = rng.random()
            if age > 120 and roll < 0.97 or age > 45 and roll < 0.8 or roll < 0.15:
                paid = total
            elif roll < 0.25:
                paid = total // 3
            else:
                paid = 0
            if customer_id == 1 and paid and detail_invoice_id is None:
                detail_invoice_id = invoice_id
            discount_bp = 200 if rng.random() < 0.2 else 0
            batch[Invoice].append(
                {
                    "id": invoice_id,
                    "number": f"INV-{invoice_id:07d}",
                    "customer": customer_id,
                    "site": customer_id,
                    "issue_date": issue,
                    "due_date": due,
                    "total_cents": total,
                    "amount_paid_cents": paid,
                    "currency": "USD",
                    "discount_bp": discount_bp,
                    "discount_days": 10 if discount_bp else 0,
                    "description": "Monthly service and supplies",
                    "status": "open",
                    "quick_pay_hash": code_hash,
                    "quick_pay_sealed": code_sealed,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            first = total // 3
            for position, amount in enumerate((first, total - first), start=1):
                line_id += 1
                batch[InvoiceLine].append(
                    {
                        "id": line_id,
                        "invoice": invoice_id,
                        "position": position,
                        "item_code": f"SKU-{position:03d}",
                        "description": "Service visit" if position == 1 else "Parts and supplies",
                        "quantity_milli": 1000,
                        "unit_price_cents": amount,
                        "amount_cents": amount,
                    }
                )
            if paid:
                payment_id += 1
                received = datetime.combine(
                    min(today, due - timedelta(days=rng.randrange(0, 20))), datetime.min.time()
                ).replace(tzinfo=UTC)
                batch[Payment].append(
                    {
                        "id": payment_id,
                        "receipt_number": f"R-{payment_id:07d}",
                        "provider": "offline",
                        "provider_reference": f"bank-{payment_id}",
                        "customer": customer_id,
                        "amount_cents": paid,
                        "currency": "USD",
                        "status": "applied",
                        "payer_name": "Accounts payable",
                        "payer_email": f"ap{customer_id}@bench.example",
                        "received_at": received,
                        "posted_at": received,
                    }
                )
                batch[PaymentApplication].append(
                    {
                        "payment": payment_id,
                        "invoice": invoice_id,
                        "amount_cents": paid,
                        "created_at": received,
                    }
                )
            if len(batch[Invoice]) >= FLUSH:
                flush()
    flush()
    with write_txn():
        Counter.insert(name="receipt", value=payment_id).execute()
    if not is_sqlite():
        # Explicit ids leave PostgreSQL's sequences behind; move them past the data.
        for model in (Customer, Site, Invoice, InvoiceLine, Payment, PaymentApplication):
            table = model._meta.table_name
            db.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f'(SELECT COALESCE(MAX(id), 1) FROM "{table}"))'
            )
    db.execute_sql("ANALYZE")  # fresh statistics, so both planners pick the 0004 indexes
    return {
        "customers": len(customers),
        "invoices": counted[Invoice],
        "lines": counted[InvoiceLine],
        "payments": counted[Payment],
        "big_account_invoices": BIG_ACCOUNT_INVOICES,
        "detail_invoice_id": detail_invoice_id,
    }
