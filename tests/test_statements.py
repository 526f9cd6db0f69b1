"""Statements: the A/R statement (page, CSV), the aging report, payment history and receipts."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from portal.models import Invoice, Payment, PaymentApplication
from portal.services import statements

from . import factories
from .conftest import login, query_plan

TODAY = date.today()


def _pay(customer, invoice, cents, day, discount=0, receipt=None):
    payment = Payment.create(
        receipt_number=receipt or f"R-{invoice.id}-{cents}",
        provider="offline",
        provider_reference=f"ref-{invoice.id}-{cents}-{day}",
        customer=customer,
        amount_cents=cents,
        currency="USD",
        received_at=datetime.combine(day, datetime.min.time()).replace(tzinfo=UTC),
    )
    PaymentApplication.create(
        payment=payment, invoice=invoice, amount_cents=cents, discount_cents=discount
    )
    Invoice.update(
        amount_paid_cents=Invoice.amount_paid_cents + cents,
        discount_taken_cents=Invoice.discount_taken_cents + discount,
    ).where(Invoice.id == invoice.id).execute()
    return payment


@pytest.fixture
def books(app):
    """Invoices before and inside a range, payments before and inside it, one from the books."""
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example")
    start = TODAY - timedelta(days=30)
    old, _ = factories.invoice(
        customer, number="INV-OLD", total_cents=50_000, issue_date=start - timedelta(days=40)
    )
    _pay(customer, old, 20_000, start - timedelta(days=10), receipt="R-BEFORE")
    _pay(customer, old, 10_000, start + timedelta(days=5), discount=1_000, receipt="R-INSIDE")
    new, _ = factories.invoice(
        customer, number="INV-NEW", total_cents=30_000, issue_date=start + timedelta(days=3)
    )
    books_paid, _ = factories.invoice(
        customer,
        number="INV-BOOKS",
        total_cents=7_000,
        paid_cents=2_000,
        issue_date=start + timedelta(days=8),
    )
    factories.invoice(
        customer,
        number="INV-VOID",
        total_cents=99_999,
        status="void",
        issue_date=start + timedelta(days=9),
    )
    factories.invoice(
        factories.customer(),
        number="INV-ELSE",
        total_cents=12_345,
        issue_date=start + timedelta(days=2),
    )
    return {"customer": customer, "user": user, "start": start}


def test_statement_opening_lines_and_closing(books):
    """Opening = owed before the range; closing today = what the invoices still owe."""
    user, start = books["user"], books["start"]
    result = statements.statement(user, start, TODAY)
    assert result.opening == 30_000  # 500 invoiced - 200 paid before the range
    kinds = [(line.kind, line.reference, line.debit, line.credit) for line in result.lines]
    assert ("invoice", "INV-NEW", 30_000, 0) in kinds
    assert ("payment", "R-INSIDE", 0, 10_000) in kinds
    assert ("credit", "R-INSIDE", 0, 1_000) in kinds
    assert ("credit", "INV-BOOKS", 0, 2_000) in kinds
    assert not any(ref in ("INV-VOID", "INV-ELSE") for _, ref, _, _ in kinds)
    owed = sum(i.balance_cents for i in Invoice.for_user(user).where(Invoice.status == "open"))
    assert result.closing == owed == 30_000 + 30_000 + 7_000 - 10_000 - 1_000 - 2_000
    assert result.lines[-1].balance == result.closing
    days = [line.day for line in result.lines]
    assert days == sorted(days)


def test_statement_page_and_csv(books, client):
    user, start = books["user"], books["start"]
    login(client, user.email)
    query = f"start={start.isoformat()}&end={TODAY.isoformat()}"
    html = client.get(f"/statements/?{query}").get_data(as_text=True)
    assert "Statement of account" in html and "$300.00" in html and "$540.00" in html
    assert "INV-ELSE" not in html
    response = client.get(f"/statements/statement.csv?{query}")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["date", "type", "reference", "description", "debit", "credit", "balance"]
    assert rows[1][1] == "opening" and rows[1][-1] == "300.00"
    assert rows[-1][1] == "closing" and rows[-1][-1] == "540.00"


@pytest.mark.parametrize(
    "query, message",
    [
        ("start=2026-13-01", "Enter a date like"),
        ("start=2026-05-01&end=2026-04-01", "on or after the start date"),
        ("start=2001-01-01&end=2026-01-01", "at most five years"),
    ],
)
def test_bad_ranges_answer_422_next_to_the_field(books, client, query, message):
    login(client, books["user"].email)
    response = client.get(f"/statements/?{query}")
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert client.get(f"/statements/statement.csv?{query}").status_code == 400


def test_default_range_starts_two_months_back():
    assert statements.default_range(date(2026, 1, 15)) == (date(2025, 11, 1), date(2026, 1, 15))
    assert statements.default_range(date(2026, 3, 31)) == (date(2026, 1, 1), date(2026, 3, 31))


def test_aging_report_groups_open_invoices(app, client):
    customer = factories.customer()
    user = factories.portal_user(customer, email="ar@example.com")
    for number, days_late in (
        ("INV-C", -5),
        ("INV-15", 15),
        ("INV-45", 45),
        ("INV-75", 75),
        ("INV-200", 200),
    ):
        factories.invoice(
            customer,
            number=number,
            total_cents=1_000,
            issue_date=TODAY - timedelta(days=30 + days_late),
        )
    report = statements.aging(user)
    groups = {k: [i.number for i, _ in v] for k, v in report["groups"].items()}
    assert groups == {
        "current": ["INV-C"],
        "d1_30": ["INV-15"],
        "d31_60": ["INV-45"],
        "d61_90": ["INV-75"],
        "d90": ["INV-200"],
    }
    login(client, user.email)
    html = client.get("/statements/aging").get_data(as_text=True)
    assert "Over 90 days" in html and "INV-200" in html and "<title" in html


def test_payment_history_and_receipts_are_scoped(books, client):
    """E2: someone else's receipt answers 404; own receipts show what they paid."""
    user, customer = books["user"], books["customer"]
    stranger = factories.customer()
    theirs, _ = factories.invoice(stranger)
    foreign = _pay(stranger, theirs, 500, TODAY, receipt="R-FOREIGN")
    login(client, user.email)
    html = client.get("/statements/payments").get_data(as_text=True)
    assert "R-BEFORE" in html and "R-INSIDE" in html and "R-FOREIGN" not in html
    assert client.get(f"/statements/payments/{foreign.public_id}").status_code == 404
    mine = Payment.get(Payment.receipt_number == "R-INSIDE")
    receipt = client.get(f"/statements/payments/{mine.public_id}").get_data(as_text=True)
    assert "INV-OLD" in receipt and "$100.00" in receipt and "$10.00" in receipt
    assert customer.id == mine.customer_id


def test_statements_need_the_role(app, client):
    user = factories.portal_user(email="inv@example.com", roles="invoices")
    login(client, user.email)
    for url in (
        "/statements/",
        "/statements/aging",
        "/statements/payments",
        "/statements/statement.csv",
    ):
        assert client.get(url).status_code == 403, url


def test_the_statement_reaches_discounts_through_their_own_index(app):
    """0044: the statement lists an account's early-payment discounts from a partial index of
    the applications that carry one, not from a scan of every application (30 ms on every
    statement page at a million invoices)."""
    customer = factories.customer()
    plan = query_plan(statements._discounts(customer.id))
    assert "payment_application_discounts" in plan, plan


def test_the_database_files_each_application_under_its_payments_customer(app):
    """0046: the statement's history sums find an account's applications by customer, so
    every application names its payment's customer, whoever writes it: the payments core,
    a plain create, a bulk insert. The database fills it on insert."""
    acme, other = factories.customer(), factories.customer()
    invoice, _ = factories.invoice(acme)
    payment = factories.payment(acme, amount_cents=1_000)
    single = PaymentApplication.create(payment=payment, invoice=invoice, amount_cents=400)
    PaymentApplication.insert_many(
        [{"payment": payment.id, "invoice": invoice.id, "amount_cents": 100}] * 2
    ).execute()
    theirs, _ = factories.invoice(other)
    PaymentApplication.create(payment=factories.payment(other), invoice=theirs, amount_cents=100)
    assert PaymentApplication.get_by_id(single.id).customer_id == acme.id
    by_customer = {(a.invoice_id, a.customer_id) for a in PaymentApplication.select()}
    assert by_customer == {(invoice.id, acme.id), (theirs.id, other.id)}
