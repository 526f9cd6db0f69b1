"""The customer's billing version (migration 0010) and the aggregates cached under it.

The balance, aging and tab counts are kept per process under the customer's
`billing_version`, which database triggers raise with every change to its invoices. These
tests show that every kind of change raises it (including SQL written by hand, outside the
portal's code), that unrelated changes do not, and that a page never shows a cached
number after the invoices changed.
"""

import re
import threading
from datetime import date, timedelta

import pytest
from playhouse.test_utils import count_queries

from portal.db import db, is_sqlite, write_txn
from portal.models import Customer, Invoice

from . import factories
from .conftest import login

TODAY = date.today()


def version(customer) -> int:
    return Customer.select(Customer.billing_version).where(Customer.id == customer.id).scalar()


def test_every_change_the_aggregates_read_raises_the_version(app):
    acme, other = factories.customer(), factories.customer()
    seen = [version(acme)]

    def changed() -> bool:
        seen.append(version(acme))
        return seen[-1] > seen[-2]

    invoice, _ = factories.invoice(acme, total_cents=10_000)
    assert changed(), "a new invoice"
    Invoice.update(amount_paid_cents=4_000).where(Invoice.id == invoice.id).execute()
    assert changed(), "a payment applied"
    Invoice.update(due_date=TODAY - timedelta(days=40)).where(Invoice.id == invoice.id).execute()
    assert changed(), "a new due date moves it between aging buckets"
    Invoice.update(description="Boiler service").where(Invoice.id == invoice.id).execute()
    assert not changed(), "the description is not part of any aggregate"
    Invoice.update(quick_pay_version=Invoice.quick_pay_version + 1).where(
        Invoice.id == invoice.id
    ).execute()
    assert not changed(), "a regenerated quick-pay code is not either"
    Invoice.update(status="void").where(Invoice.id == invoice.id).execute()
    assert changed(), "a void"

    site = factories.site(acme)
    Invoice.update(site=site).where(Invoice.id == invoice.id).execute()
    assert changed(), "a new site: a site-limited login's totals change"

    before_other = version(other)
    Invoice.update(customer=other).where(Invoice.id == invoice.id).execute()
    assert changed() and version(other) > before_other, "moved: both customers change"
    second, _ = factories.invoice(acme)
    seen.append(version(acme))
    Invoice.delete().where(Invoice.id == second.id).execute()
    assert changed(), "a deleted invoice"
    # Hand-written SQL (an accountant's fix in the database) is seen too: it is a trigger.
    third, _ = factories.invoice(acme, total_cents=5_000)
    seen.append(version(acme))
    db.execute_sql(f"UPDATE invoice SET total_cents = 6000 WHERE id = {int(third.id)}")
    assert changed(), "raw SQL"


def test_saving_a_customer_read_earlier_keeps_the_raised_version(app):
    """A back-office form saves the customer it loaded before a payment raised the
    version: only the changed fields are written, never the old version."""
    acme = factories.customer()
    loaded = Customer.get_by_id(acme.id)
    factories.invoice(acme)
    raised = version(acme)
    assert raised > loaded.billing_version
    loaded.name = "Acme Renamed"
    loaded.save()
    assert version(acme) == raised and Customer.get_by_id(acme.id).name == "Acme Renamed"


def _tabs(html: str) -> dict:
    return dict(
        re.findall(r'>(Open|Overdue|Paid|All) <span class="filter-count">(\d+)</span>', html)
    )


def test_cached_counts_are_reused_and_never_outlive_a_change(app, client):
    customer = factories.customer()
    site = factories.site(customer)
    user = factories.portal_user(customer, email="pat@acme.example")
    for i in range(3):
        factories.invoice(customer, number=f"INV-{i}", total_cents=10_000, site=site if i else None)
    login(client, user.email)
    url = "/invoices/?status=all"
    with count_queries() as first:
        html = client.get(url).get_data(as_text=True)
    assert _tabs(html) == {"Open": "3", "Overdue": "0", "Paid": "0", "All": "3"}
    with count_queries() as again:
        assert _tabs(client.get(url).get_data(as_text=True)) == _tabs(html)
    assert again.count < first.count, "the second visit reuses the aggregates"

    # Paid in the ERP and written straight into the database: the next page shows it.
    db.execute_sql(
        "UPDATE invoice SET amount_paid_cents = total_cents WHERE number = 'INV-0'",
    )
    html = client.get(url).get_data(as_text=True)
    assert _tabs(html) == {"Open": "2", "Overdue": "0", "Paid": "1", "All": "3"}
    assert "balance $200.00" in html

    # Another login of the same company limited to one site: its own numbers, not ours.
    limited = factories.portal_user(customer, email="site@acme.example", sites=[site])
    client.post("/logout")
    login(client, limited.email)
    html = client.get(url).get_data(as_text=True)
    assert _tabs(html) == {"Open": "2", "Overdue": "0", "Paid": "0", "All": "2"}


def test_the_dashboard_balance_follows_a_payment_at_once(app, client):
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=25_000)
    login(client, user.email)

    def open_balance() -> str:
        html = client.get("/").get_data(as_text=True)
        return re.search(r'class="tile-value">([^<]+)<', html).group(1)

    assert open_balance() == "$250.00"
    Invoice.update(amount_paid_cents=Invoice.amount_paid_cents + 10_000).where(
        Invoice.id == invoice.id
    ).execute()
    assert open_balance() == "$150.00"


def test_a_login_limited_to_no_site_sees_empty_totals(app, client):
    """A site-limited login whose last site was removed: nothing to see, not an error."""
    customer = factories.customer()
    factories.invoice(customer, total_cents=10_000)
    user = factories.portal_user(customer, email="nosite@acme.example", sites=[])
    login(client, user.email)
    assert client.get("/").status_code == 200
    html = client.get("/invoices/?status=all").get_data(as_text=True)
    assert _tabs(html) == {"Open": "0", "Overdue": "0", "Paid": "0", "All": "0"}


def test_an_import_that_moves_invoices_between_sites_is_seen(app, client, runner, tmp_path):
    """A re-import that changes only an invoice's site still raises the version."""
    customer = factories.customer(account_number="ACME")
    north, south = factories.site(customer, site_code="N"), factories.site(customer, site_code="S")
    factories.invoice(customer, number="INV-MOVE", total_cents=10_000, site=north)
    limited = factories.portal_user(customer, email="north@acme.example", sites=[north])
    login(client, limited.email)
    assert _tabs(client.get("/invoices/?status=all").get_data(as_text=True))["All"] == "1"
    invoice = Invoice.get(Invoice.number == "INV-MOVE")
    csv_file = tmp_path / "invoices.csv"
    csv_file.write_text(
        "number,account_number,site_code,issue_date,due_date,total\n"
        f"INV-MOVE,ACME,S,{invoice.issue_date},{invoice.due_date},100.00\n"
    )
    result = runner.invoke(args=["import", "invoices", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert Invoice.get(Invoice.number == "INV-MOVE").site_id == south.id
    assert _tabs(client.get("/invoices/?status=all").get_data(as_text=True))["All"] == "0"


def test_two_transactions_over_the_same_customers_in_opposite_orders_both_commit(build_app):
    """PostgreSQL raises the versions at commit in the order invoices were written; two
    transactions that wrote customers A, B and B, A would each lock one customer row and
    wait for the other. `Customer.lock_versions` takes them in id order first, so the
    second one waits and then commits. (SQLite runs one writer at a time: nothing races.)"""
    app = build_app(DATABASE_MAX_CONNECTIONS=10)
    a, b = factories.customer(), factories.customer()
    (a1, _), (a2, _) = factories.invoice(a), factories.invoice(a)
    (b1, _), (b2, _) = factories.invoice(b), factories.invoice(b)
    before = version(a), version(b)
    both_wrote = None if is_sqlite() else threading.Barrier(2)
    errors = []

    def change(first, second):
        with app.app_context():
            try:
                with write_txn():
                    for invoice in (first, second):
                        Invoice.update(total_cents=Invoice.total_cents + 1).where(
                            Invoice.id == invoice.id
                        ).execute()
                    if both_wrote:
                        both_wrote.wait(timeout=10)
                    Customer.lock_versions({first.customer_id, second.customer_id})
            except Exception as exc:  # asserted below
                errors.append(exc)
            finally:
                db.close()

    threads = [
        threading.Thread(target=change, args=(a1, b1)),
        threading.Thread(target=change, args=(b2, a2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert version(a) >= before[0] + 2 and version(b) >= before[1] + 2


@pytest.mark.postgresql
def test_one_transaction_raises_a_customers_version_once(app):
    """0030: a transaction writing many invoices of a customer raises its version once at
    commit (a 1M import no longer rewrites each customer row per invoice); the next
    transaction raises it again."""
    acme, other = factories.customer(), factories.customer()
    start, other_start = version(acme), version(other)
    with write_txn():
        for _ in range(5):
            factories.invoice(acme)
        factories.invoice(other)
    assert (version(acme), version(other)) == (start + 1, other_start + 1)
    with write_txn():
        Invoice.update(amount_paid_cents=1).where(Invoice.customer == acme.id).execute()
    assert version(acme) == start + 2
