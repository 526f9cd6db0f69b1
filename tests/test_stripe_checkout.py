"""Paying through Stripe's hosted Checkout (issue 14), end to end against the suite's own
Stripe: Stripe's official library talks to localstripe plus the suite's Checkout Sessions,
hosted page and signed webhooks, all on loopback (tests/stripe_fake). No internet."""

import re
from urllib.parse import urlsplit

from portal.models import Invoice, Payment, PaymentAttempt
from portal.services import payments

from . import factories, stripe_fixtures
from .conftest import login

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
app = stripe_fixtures.stripe_app


def _session_id(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def _pay_signed_in(client, invoices_cents):
    lines = [f"{inv.id}:{cents}" for inv, cents in invoices_cents]
    response = client.post(
        "/invoices/pay",
        data={
            "line": lines,
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": "stripe",
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    return response.headers["Location"]


def _back(client, location):
    """The payer's browser comes back from Stripe's page to Doorstep."""
    path = location.split("://", 1)[-1].split("/", 1)[1]
    response = client.get("/" + path)
    assert response.status_code == 303
    return client.get(response.headers["Location"])


def test_signed_in_customer_pays_several_invoices_by_card(app, client, stripe_env, mailbox):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, email="pat@acme.example")
    first, _ = factories.invoice(customer, total_cents=30_000)
    second, _ = factories.invoice(customer, total_cents=45_050)
    login(client, user.email)
    url = _pay_signed_in(client, [(first, 30_000), (second, 45_050)])
    assert url.startswith(stripe_env.api_base)  # Stripe's page, not ours: no card data here (I1)
    session = stripe_env.session(_session_id(url))
    assert session["amount_total"] == 75_050 and session["currency"] == "usd"
    assert session["metadata"]["attempt"]
    back = stripe_env.complete(session["id"], "card")
    page = _back(client, back)
    assert "Receipt R-" in page.get_data(as_text=True)
    payment = Payment.get()
    assert payment.provider == "stripe" and payment.status == "applied"
    assert payment.provider_reference.startswith("pi_")
    assert Invoice.get_by_id(first.id).balance_cents == 0
    assert Invoice.get_by_id(second.id).balance_cents == 0
    assert Payment.select().count() == 1  # the return and the webhook: applied once
    assert mailbox.wait_for(1)[0]["To"] == "pat@acme.example"


def test_guest_quick_pay_through_stripe(app, client, stripe_env):
    invoice, code = factories.invoice(total_cents=12_345)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    response = client.post(
        "/pay/invoice",
        data={
            "amount": "123.45",
            "payer_name": "Guest",
            "payer_email": "g@example.com",
            "provider": "stripe",
        },
    )
    assert response.status_code == 303
    back = stripe_env.complete(_session_id(response.headers["Location"]), "card")
    assert "Receipt R-" in _back(client, back).get_data(as_text=True)
    assert Invoice.get_by_id(invoice.id).balance_cents == 0


def test_a_declined_card_leaves_the_invoice_open_and_the_payer_can_try_again(
    app, client, stripe_env
):
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=30_000)
    login(client, user.email)
    url = _pay_signed_in(client, [(invoice, 30_000)])
    stripe_env.complete(_session_id(url), "decline")  # stays on Stripe's page, open
    assert Invoice.get_by_id(invoice.id).balance_cents == 30_000
    cancel = stripe_env.complete(_session_id(url), "cancel")
    page = _back(client, cancel).get_data(as_text=True)
    assert "Receipt" not in page
    # "Try again" comes back to the review filled from the attempt (issue 19).
    retry = re.search(r'href="(/invoices/retry\?attempt=[^"]+)">Try again<', page).group(1)
    review = client.get(retry).get_data(as_text=True)
    assert 'value="Pat"' in review and 'value="pat@acme.example"' in review
    assert f'name="line" value="{invoice.public_id}:30000"' in review
    # Paying again starts a new session (the old attempt is superseded) and works.
    again = _pay_signed_in(client, [(invoice, 30_000)])
    _back(client, stripe_env.complete(_session_id(again), "card"))
    assert Invoice.get_by_id(invoice.id).balance_cents == 0 and Payment.select().count() == 1


def test_a_bank_debit_shows_pending_until_stripe_says_it_settled(app, client, stripe_env):
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=30_000)
    login(client, user.email)
    url = _pay_signed_in(client, [(invoice, 30_000)])
    _back(client, stripe_env.complete(_session_id(url), "bank"))
    assert Payment.get().status == "pending"
    page = client.get(f"/invoices/{invoice.public_id}").get_data(as_text=True)
    assert "$300.00 pending" in page and "card or bank account (stripe)" in page.lower()
    stripe_env.settle(_session_id(url), succeeded=True)
    assert Payment.get().status == "applied" and Invoice.get_by_id(invoice.id).balance_cents == 0


def test_the_worker_asks_stripe_about_a_payment_whose_webhook_never_came(app, client, stripe_env):
    """I7: the confirmation reached Stripe but neither the return nor the webhook reached
    Doorstep; reconciliation asks Stripe and applies it once, and the late webhook then
    changes nothing."""
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=30_000)
    login(client, user.email)
    url = _pay_signed_in(client, [(invoice, 30_000)])
    stripe_env.auto_deliver = False
    stripe_env.complete(_session_id(url), "card")  # the payer closed the tab on Stripe's page
    assert not Payment.select().exists()
    from datetime import timedelta

    with app.app_context():
        assert payments.reconcile(grace=timedelta(0)) == 1
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    stripe_env.auto_deliver = True
    stripe_env.deliver_outbox()
    stripe_env.wait_idle()
    assert Payment.select().count() == 1


def test_a_zero_decimal_currency_goes_to_stripe_in_whole_units(app, client, stripe_env):
    customer = factories.customer()
    user = factories.portal_user(customer, email="pat@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=1_250_000, currency="JPY")
    login(client, user.email)
    url = _pay_signed_in(client, [(invoice, 1_250_000)])
    assert stripe_env.session(_session_id(url))["amount_total"] == 12_500  # ¥12,500
    _back(client, stripe_env.complete(_session_id(url), "card"))
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    # A JPY amount with "cents" cannot be charged: refused before Stripe, nothing started.
    odd, _ = factories.invoice(customer, total_cents=1_250_050, currency="JPY")
    response = client.post(
        "/invoices/pay",
        data={
            "line": [f"{odd.id}:1250050"],
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": "stripe",
        },
    )
    assert response.status_code == 422
    assert re.search("whole|JPY", response.get_data(as_text=True))
    assert (
        not PaymentAttempt.select()
        .where(PaymentAttempt.status == "redirected")
        .where(PaymentAttempt.amount_cents == 1_250_050)
        .exists()
    )
