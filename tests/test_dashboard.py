"""The signed-in customer's home: bulletin, balances, aging chart, recent activity, counts."""

from datetime import date, timedelta

import pytest

from portal.models import Case, Quote
from portal.services import billing, settings

from . import factories
from .conftest import login

TODAY = date.today()


@pytest.mark.parametrize(
    "days_late, bucket",
    [
        (-3, "current"),
        (0, "current"),
        (1, "d1_30"),
        (30, "d1_30"),
        (31, "d31_60"),
        (60, "d31_60"),
        (61, "d61_90"),
        (90, "d61_90"),
        (91, "d90"),
        (400, "d90"),
    ],
)
def test_aging_buckets_by_days_past_due(app, days_late, bucket):
    """Each open balance lands in exactly one bucket; paid and void invoices in none."""
    customer = factories.customer()
    user = factories.portal_user(customer)
    factories.invoice(
        customer,
        total_cents=7_000,
        paid_cents=2_000,
        issue_date=TODAY - timedelta(days=30 + days_late),
    )
    factories.invoice(customer, total_cents=9_000, paid_cents=9_000)
    factories.invoice(customer, total_cents=9_000, status="void")
    summary = billing.summary(user, TODAY)
    amounts = {key: amount for key, _, amount in summary["buckets"]}
    assert amounts[bucket] == 5_000 and sum(amounts.values()) == 5_000
    assert summary["balance"] == 5_000 and summary["open_count"] == 1
    assert summary["overdue"] == (0 if bucket == "current" else 5_000)


def test_dashboard_shows_bulletin_balances_chart_and_recent_activity(app, client):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    factories.invoice(
        customer, number="INV-LATE", total_cents=40_000, issue_date=TODAY - timedelta(days=50)
    )
    factories.invoice(customer, number="INV-NOW", total_cents=12_500)
    factories.payment(customer, 7_725, receipt_number="R-00042", status="pending")
    settings.save({"bulletin_message": "**Closed** on Friday <script>alert(1)</script>"})
    login(client, user.email)
    html = client.get("/").get_data(as_text=True)
    assert "R-00042" in html and "$77.25" in html and "awaiting transfer" in html
    assert "<strong>Closed</strong>" in html and "<script>alert" not in html
    assert "$525.00" in html  # open balance
    assert "$400.00" in html  # overdue
    assert 'role="img"' in html and "<title" in html and "<desc" in html
    assert "1–30 days: $400.00" in html  # the chart's values as text
    assert "INV-NOW" in html and "INV-LATE" in html


def test_counts_follow_the_roles(app, client):
    """Open quotes and cases appear only for the roles the user has."""
    customer = factories.customer()
    Quote.create(number="Q-1", customer=customer, status="published")
    Quote.create(number="Q-2", customer=customer, status="draft")
    # Published but past its valid-until date: expired, nothing to answer any more.
    factories.quote(customer, valid_until=date.today() - timedelta(days=1))
    Case.create(number="C-1", customer=customer, subject="Leak", status="open")
    Case.create(number="C-2", customer=customer, subject="Old", status="closed")
    everything = factories.portal_user(customer, email="all@example.com")
    assert billing.open_counts(everything) == {"quotes": 1, "cases": 1}
    quotes_only = factories.portal_user(customer, email="q@example.com", roles="quotes")
    assert billing.open_counts(quotes_only) == {"quotes": 1}
    login(client, quotes_only.email)
    html = client.get("/").get_data(as_text=True)
    assert "waiting for your answer" in html and "open support case" not in html
    assert "Open balance" not in html  # no invoices or statements role


def test_guests_get_the_landing_page(app, client):
    html = client.get("/").get_data(as_text=True)
    assert "Open balance" not in html and "/login" in html
