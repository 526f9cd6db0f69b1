"""Settings say what they do (issue 13, finding 6): payment terms are text shown to every
payer, accepting them is a separate switch for guests and signed-in payers alike, the
printed discount comes from the invoice's own terms, and quick pay follows the partial
payment setting."""

import re
from datetime import UTC, date, datetime

import pytest
import time_machine

from portal.models import PaymentAttempt
from portal.services import settings

from . import factories
from .conftest import login, staff_login

TERMS = "Net 30. Overdue balances are charged 1.5 % a month."


def quick_pay(client, invoice, code, **data):
    """Open the invoice in quick pay and post the pay form with the given fields."""
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    values = {
        "amount": "50.00",
        "payer_name": "Pat Payer",
        "payer_email": "pat@example.com",
        "provider": "test-checkout",
    }
    values.update(data)
    return client.post("/pay/invoice", data=values)


def signed_in_pay(client, invoice, **data):
    """Pay one invoice from the signed-in review page."""
    values = {
        "line": [f"{invoice.id}:{invoice.balance_cents}"],
        "payer_name": "Pat Buyer",
        "payer_email": "pat@example.com",
        "provider": "test-checkout",
    }
    values.update(data)
    return client.post("/invoices/pay", data=values)


@pytest.fixture
def account(client):
    customer = factories.customer()
    user = factories.portal_user(customer)
    invoice, code = factories.invoice(customer, total_cents=10_000)
    return customer, user, invoice, code


def test_finding6_payment_terms_are_text_on_print_quick_pay_and_review(client, account):
    """With the acceptance switch off, the terms are shown, never asked to be accepted."""
    settings.save({"payment_terms": TERMS})
    _, user, invoice, code = account

    client.post("/pay/", data={"number": invoice.number, "secret": code})
    page = client.get("/pay/invoice").text
    assert "Overdue balances are charged" in page and 'name="accept_terms"' not in page
    assert quick_pay(client, invoice, code).status_code == 303

    login(client, user.email)
    review = client.post("/invoices/review", data={"invoice": [str(invoice.id)]}).text
    assert "Overdue balances are charged" in review and 'name="accept_terms"' not in review
    printed = client.get(f"/invoices/{invoice.public_id}/print").text
    assert "Overdue balances are charged" in printed


def test_finding6_acceptance_switch_asks_every_payer(client, account):
    """Switched on, guest quick pay and the signed-in checkout both need the tick."""
    settings.save({"payment_terms": TERMS, "require_payment_terms_acceptance": True})
    _, user, invoice, code = account

    response = quick_pay(client, invoice, code)
    assert response.status_code == 422
    assert 'id="accept_terms-error"' in response.text
    assert "Accept the payment terms to continue." in response.text
    assert PaymentAttempt.select().count() == 0
    assert quick_pay(client, invoice, code, accept_terms="y").status_code == 303
    PaymentAttempt.delete().execute()

    login(client, user.email)
    review = client.post("/invoices/review", data={"invoice": [str(invoice.id)]}).text
    assert 'name="accept_terms"' in review and "I accept the payment terms" in review
    response = signed_in_pay(client, invoice)
    assert response.status_code == 422
    assert "Accept the payment terms to continue." in response.text
    assert PaymentAttempt.select().count() == 0
    response = signed_in_pay(client, invoice, accept_terms="y")
    assert response.status_code == 303 and PaymentAttempt.select().count() == 1


def test_finding6_acceptance_switch_without_terms_does_nothing(client, account):
    """No terms text: nothing to accept, nobody is asked."""
    settings.save({"payment_terms": "", "require_payment_terms_acceptance": True})
    _, user, invoice, code = account
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    assert 'name="accept_terms"' not in client.get("/pay/invoice").text
    assert quick_pay(client, invoice, code).status_code == 303
    login(client, user.email)
    other, _ = factories.invoice(invoice.customer, total_cents=5_000)
    assert signed_in_pay(client, other).status_code == 303


def test_finding6_settings_page_says_what_the_terms_settings_do(client):
    """The help texts name where the terms show and what the switch does."""
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    page = client.get("/staff/settings/").text
    assert "on the printable invoice, on quick pay and on the review page" in page
    assert 'name="require_payment_terms_acceptance"' in page
    assert "must tick “I accept the payment terms”" in page
    assert "Has no effect while the payment terms above are empty." in page
    assert "2 % off within 10 days" not in page


ISSUED = date(2026, 12, 1)


@pytest.mark.parametrize(
    "terms, on, offer",
    [
        # 2 % within 10 days of Dec 1: the offer lasts through Dec 11.
        (
            {"discount_bp": 200, "discount_days": 10},
            "2026-12-05",
            "2% off if paid in full by Dec 11, 2026",
        ),
        (
            {"discount_bp": 150, "discount_days": 20},
            "2026-12-05",
            "1.5% off if paid in full by Dec 21, 2026",
        ),
        ({"discount_bp": 200, "discount_days": 10}, "2026-12-12", None),  # window passed
        ({}, "2026-12-05", None),  # no discount in its terms
    ],
)
def test_finding6_printed_discount_comes_from_the_invoices_own_terms(client, terms, on, offer):
    """The printable invoice offers the invoice's own discount while it lasts and nothing
    else; the payment terms text is printed beside it as written."""
    settings.save({"payment_terms": TERMS})
    customer = factories.customer()
    user = factories.portal_user(customer)
    invoice, _ = factories.invoice(customer, total_cents=100_000, issue_date=ISSUED, **terms)
    with time_machine.travel(datetime.fromisoformat(on).replace(tzinfo=UTC), tick=False):
        login(client, user.email)
        html = client.get(f"/invoices/{invoice.public_id}/print").text
    shown = re.findall(r"<dt>Early-payment discount</dt><dd>([^<]*)</dd>", html)
    assert shown == ([offer] if offer else [])
    assert "Overdue balances are charged" in html


def test_finding6_quick_pay_with_partial_payments_off_pays_the_whole_amount(client):
    """The amount is text, not a field; whatever is posted, the payment clears the invoice;
    nothing says "paid in full" about an open invoice."""
    settings.save({"partial_payments": False})
    invoice, code = factories.invoice(total_cents=745_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    page = client.get("/pay/invoice").text
    assert "$7,450.00" in page
    assert not re.search(r'<input[^>]*name="amount"[^>]*type="text"', page)
    assert not re.search(r'<input[^>]*type="text"[^>]*name="amount"', page)
    assert "paid in full" not in page.lower()
    assert quick_pay(client, invoice, code, amount="1.00").status_code == 303
    assert PaymentAttempt.get().amount_cents == 745_000


def test_finding6_quick_pay_with_partial_payments_off_takes_the_open_discount(client):
    """Inside the discount window the fixed amount is the discounted one."""
    settings.save({"partial_payments": False})
    invoice, code = factories.invoice(total_cents=100_000, discount_bp=200, discount_days=10)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    page = client.get("/pay/invoice").text
    assert re.search(r'class="amount-fixed"><strong>\$980\.00<', page)
    assert quick_pay(client, invoice, code, amount="").status_code == 303
    attempt = PaymentAttempt.get()
    assert attempt.amount_cents == 98_000


def test_finding6_quick_pay_with_partial_payments_on_keeps_the_amount_field(client):
    """Partial payments on: an editable amount with the minimum in its hint."""
    invoice, code = factories.invoice(total_cents=745_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    page = client.get("/pay/invoice").text
    assert re.search(r'<input[^>]*name="amount"', page) and "at least $10.00" in page
    assert quick_pay(client, invoice, code, amount="100.00").status_code == 303
    assert PaymentAttempt.get().amount_cents == 10_000
