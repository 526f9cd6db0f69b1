"""A declined card keeps what was typed (issue 19): "Try again" brings the payer back to the
form filled with the failed attempt's payer name, email, amounts and method, read from the
attempt record, and only for whoever started it."""

import re

import pytest

from portal.ids import public_id
from portal.models import PaymentAttempt
from portal.services import settings

from . import factories
from .conftest import RequestClient, login


def _decline(client, start):
    """Follow a started payment to the test checkout, decline the card, land on the status."""
    assert start.status_code == 303 and "/test-checkout/" in start.location, start.status_code
    done = client.post(start.location, data={"outcome": "decline"}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert "The payment was declined" in html
    return html


def _try_again(html: str) -> str:
    return re.search(r'<a class="btn btn-primary" href="([^"]+)">Try again</a>', html).group(1)


def _value(html: str, name: str) -> str | None:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    if found is None:
        return None
    value = re.search(r'value="([^"]*)"', found.group(0))
    return value.group(1) if value else ""


@pytest.fixture
def account(app):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example")
    a, _ = factories.invoice(customer, total_cents=10_000)
    b, _ = factories.invoice(customer, total_cents=30_000)
    return customer, user, a, b


def _pay_and_decline(client, a, b):
    start = client.post(
        "/invoices/pay",
        data={
            "line": [f"{public_id('invoice', a.id)}:10000", f"{public_id('invoice', b.id)}:12000"],
            "payer_name": "Robin Q. Payer",
            "payer_email": "Robin@Acme.example",
            "provider": "test-checkout",
        },
    )
    return _decline(client, start)


def test_try_again_returns_to_the_review_filled_in(account, client):
    _, user, a, b = account
    login(client, user.email)
    status = _pay_and_decline(client, a, b)
    attempt = PaymentAttempt.get()
    url = _try_again(status)
    assert url == f"/invoices/retry?attempt={attempt.key}"  # the record's key, not its values
    page = client.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Review your payment" in html
    assert "Your last payment was declined and nothing was taken." in html
    assert _value(html, "payer_name") == "Robin Q. Payer"
    assert _value(html, "payer_email") == "robin@acme.example"
    lines = re.findall(r'name="line" value="([^"]+)"', html)
    assert lines == [f"{public_id('invoice', a.id)}:10000", f"{public_id('invoice', b.id)}:12000"]
    assert re.search(r'value="test-checkout"[^>]*checked|checked[^>]*value="test-checkout"', html)
    assert "$220.00" in html
    # Paying from it starts a new attempt with the same details.
    again = client.post(
        "/invoices/pay",
        data={
            "line": lines,
            "payer_name": _value(html, "payer_name"),
            "payer_email": _value(html, "payer_email"),
            "provider": "test-checkout",
        },
    )
    assert again.status_code == 303
    assert PaymentAttempt.select().count() == 2


def test_an_invoice_paid_meanwhile_drops_out_of_the_retry(account, client):
    _, user, a, b = account
    login(client, user.email)
    _pay_and_decline(client, a, b)
    a.amount_paid_cents = a.total_cents
    a.save()
    html = client.get(f"/invoices/retry?attempt={PaymentAttempt.get().key}").get_data(as_text=True)
    assert re.findall(r'name="line" value="([^"]+)"', html) == [
        f"{public_id('invoice', b.id)}:12000"
    ]


def test_only_the_payer_may_retry_and_only_what_took_no_money(account, app, client):
    customer, user, a, b = account
    login(client, user.email)
    _pay_and_decline(client, a, b)
    key = PaymentAttempt.get().key

    colleague = factories.portal_user(customer, email="lee@acme.example")
    other = factories.portal_user(factories.customer(), email="sam@globex.example")
    for person in (colleague, other):
        browser = app.test_client()
        login(browser, person.email)
        assert browser.get(f"/invoices/retry?attempt={key}").status_code == 404
    # The colleague may read the status page (same company), but gets no "Try again".
    browser = app.test_client()
    login(browser, colleague.email)
    status = browser.get(f"/payments/{key}").get_data(as_text=True)
    assert ">Try again</a>" not in status and "Robin" not in status

    assert client.get("/invoices/retry?attempt=nonsense").status_code == 404
    assert client.get("/invoices/retry").status_code == 404
    PaymentAttempt.update(status="succeeded").execute()
    assert client.get(f"/invoices/retry?attempt={key}").status_code == 404


def _quick_pay(client, invoice, code, amount="40.00"):
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    start = client.post(
        "/pay/invoice",
        data={
            "amount": amount,
            "payer_name": "Guest Payer",
            "payer_email": "guest@example.com",
            "provider": "test-checkout",
        },
    )
    return _decline(client, start)


def test_quick_pay_try_again_keeps_name_email_and_amount(app, client):
    settings.save({"partial_payments": True})
    invoice, code = factories.invoice(total_cents=100_000)
    status = _quick_pay(client, invoice, code)
    url = _try_again(status)
    assert url == f"/pay/invoice?attempt={PaymentAttempt.get().key}"
    html = client.get(url).get_data(as_text=True)
    assert _value(html, "payer_name") == "Guest Payer"
    assert _value(html, "payer_email") == "guest@example.com"
    assert _value(html, "amount") == "40.00"

    # Another browser that opens the same invoice does not get this payer's details.
    stranger = RequestClient(app, app.response_class, use_cookies=True)
    stranger.post("/pay/", data={"number": invoice.number, "secret": code})
    other = stranger.get(url).get_data(as_text=True)
    assert other.count("Guest Payer") == 0 and "guest@example.com" not in other
    assert _value(other, "amount") == "1000.00"
