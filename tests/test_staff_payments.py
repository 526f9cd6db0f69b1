"""Payments in the back office: filter, confirm or reject offline payments, void, flagged
credits, and the CSV export that marks payments posted."""

import csv
import io
import re

import pytest

from portal.models import AuditLog, Invoice, Payment
from portal.services import payments

from . import factories
from .conftest import HX, staff_login

URL = "/staff/payments/"


@pytest.fixture
def agent(client):
    user = factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    return user


def offline_payment(app, invoice, cents, email="pat@example.com") -> Payment:
    """A pending offline payment made the way a customer makes it."""
    with app.test_request_context():
        checkout = payments.checkout(invoice.customer, [(invoice, cents)], "offline", "Pat", email)
    return Payment.get(Payment.attempt == checkout.attempt.id)


def applied_payment(app, invoice, cents, by) -> Payment:
    payment = offline_payment(app, invoice, cents)
    with app.test_request_context():
        payments.confirm_offline(payment, by)
    return Payment.get_by_id(payment.id)


def test_confirm_offline_applies_it_and_sends_a_receipt(app, client, agent, mailbox):
    """I-rows: a pending offline payment is confirmed by staff; the invoice balance drops."""
    invoice, _ = factories.invoice(total_cents=50_000)
    payment = offline_payment(app, invoice, 50_000)
    assert payment.status == "pending"
    mailbox.clear()
    listing = client.get(URL + "?status=pending").get_data(as_text=True)
    assert payment.receipt_number in listing
    received = {"amount": "500.00", "received_on": payments.today().isoformat()}
    response = client.post(URL + f"{payment.id}/confirm", data=received)
    assert response.status_code == 303
    assert Payment.get_by_id(payment.id).status == "applied"
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    assert any(m["To"] == "pat@example.com" for m in mailbox.wait_for(1))
    again = client.post(URL + f"{payment.id}/confirm", data=received)
    assert again.status_code == 303
    assert "Only pending payments can be confirmed." in client.get(
        again.headers["Location"]
    ).get_data(as_text=True)


def test_reject_needs_a_reason(app, client, agent):
    """Rejecting a pending payment needs a reason (422 without); nothing is applied."""
    invoice, _ = factories.invoice(total_cents=50_000)
    payment = offline_payment(app, invoice, 20_000)
    response = client.post(URL + f"{payment.id}/reject", data={"reject-reason": ""})
    assert response.status_code == 422
    assert "Say why" in response.get_data(as_text=True)
    response = client.post(URL + f"{payment.id}/reject", data={"reject-reason": "Never came"})
    assert response.status_code == 303
    assert Payment.get_by_id(payment.id).status == "rejected"
    assert Invoice.get_by_id(invoice.id).balance_cents == 50_000


def test_void_reverses_the_applications(app, client, agent):
    """Void: the invoice is open again with its full balance; audited with the reason."""
    invoice, _ = factories.invoice(total_cents=50_000)
    payment = applied_payment(app, invoice, 50_000, agent)
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    response = client.post(URL + f"{payment.id}/void", data={"void-reason": "Bounced"})
    assert response.status_code == 303
    assert Payment.get_by_id(payment.id).status == "void"
    assert Invoice.get_by_id(invoice.id).balance_cents == 50_000
    assert AuditLog.select().where(AuditLog.action == "payment.voided").count() == 1


def test_flagged_credit_is_listed_and_cleared_with_a_note(client, agent):
    """Unapplied credits are flagged for attention; staff clear the flag with a note."""
    customer = factories.customer()
    payment = Payment.create(
        receipt_number="R-FLAG",
        provider="test-checkout",
        provider_reference="ref-1",
        customer=customer,
        amount_cents=5000,
        unapplied_cents=5000,
        currency="USD",
        flagged=True,
        flag_reason="unapplied credit",
    )
    factories.payment(customer, 5000, receipt_number="R-PLAIN", provider="test-checkout")
    html = client.get(URL + "?flagged=y", headers=HX).get_data(as_text=True)
    assert "R-FLAG" in html and "R-PLAIN" not in html and "<html" not in html
    response = client.post(URL + f"{payment.id}/resolve", data={"note": ""})
    assert response.status_code == 422
    response = client.post(URL + f"{payment.id}/resolve", data={"note": "Refunded by bank"})
    assert response.status_code == 303
    payment = Payment.get_by_id(payment.id)
    assert not payment.flagged and payment.flag_reason == "Refunded by bank"


def test_the_export_button_is_disabled_with_nothing_new_to_export(app, client, agent):
    """Issue 19: "Export 0 new payments" cannot be pressed; one new payment enables it."""
    page = client.get(URL).get_data(as_text=True)
    assert re.search(r"<button [^>]*disabled>Export 0 new payments</button>", page)
    applied_payment(app, factories.invoice(total_cents=1_000)[0], 1_000, agent)
    page = client.get(URL).get_data(as_text=True)
    assert re.search(r'<button type="submit" class="btn btn-primary">Export 1 new payment<', page)


def test_export_marks_posted_and_the_next_export_holds_only_new_ones(app, client, agent):
    """The CSV lists applied payments once; a second export has only newer ones (G6 too)."""
    customer = factories.customer(name="=HYPERLINK(evil)")
    first, _ = factories.invoice(customer, number="INV-A", total_cents=10_000)
    applied_payment(app, first, 10_000, agent)
    offline_payment(app, factories.invoice(customer, number="INV-P")[0], 5000)  # pending

    response = client.post(URL + "export")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["invoice_number"] for r in rows] == ["INV-A"]
    assert rows[0]["amount"] == "100.00"
    assert rows[0]["customer"].startswith("'=")  # formula neutralised
    assert Payment.select().where(Payment.posted_at.is_null(False)).count() == 1

    response = client.post(URL + "export")
    assert response.status_code == 303  # nothing new
    second, _ = factories.invoice(customer, number="INV-B", total_cents=7_000)
    applied_payment(app, second, 7_000, agent)
    rows = list(csv.DictReader(io.StringIO(client.post(URL + "export").get_data(as_text=True))))
    assert [r["invoice_number"] for r in rows] == ["INV-B"]
    assert AuditLog.select().where(AuditLog.action == "payments.exported").count() == 2

    page = client.get(URL).get_data(as_text=True)
    link = page.split('href="/staff/payments/exports/')[1].split('"')[0]
    again = client.get(URL + "exports/" + link)
    assert again.status_code == 200 and "INV-" in again.get_data(as_text=True)
    assert client.get(URL + "exports/nonsense").status_code == 404


def test_filters_by_text_status_and_export_state(app, client, agent):
    """Filters narrow the list; a plain GET renders the page, htmx the results."""
    acme = factories.customer(name="Acme")
    applied_payment(app, factories.invoice(acme, total_cents=1000)[0], 1000, agent)
    offline_payment(app, factories.invoice(factories.customer(name="Globex"))[0], 2000)
    html = client.get(URL + "?q=globex").get_data(as_text=True)
    assert "Globex" in html and "Acme" not in html.split('id="results"')[1]
    html = client.get(URL + "?status=applied&posted=no", headers=HX).get_data(as_text=True)
    assert "Acme" in html and "Globex" not in html
    assert client.get(URL + "?start=junk").status_code == 200
