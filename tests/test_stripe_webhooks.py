"""Stripe webhooks (issue 14): verified with Stripe's own verifier, handled once, correct in
any order, for unknown sessions, with bad or expired signatures; refunds and disputes made in
Stripe's dashboard take the money back. Events are built and signed here with Stripe's
documented scheme (`t=<unix>,v1=<HMAC-SHA256 of "t.payload">`); the flows that need
Stripe's API (starting a Checkout Session) are in tests/test_stripe_checkout.py."""

import hashlib
import hmac
import json
import time
import uuid

import pytest

from portal.models import AuditLog, Invoice, Payment, PaymentAttempt, ProviderEvent, Refund
from portal.services import payments

from . import factories

SECRET = "whsec_test_doorstep"


@pytest.fixture
def stripe_app(build_app):
    return build_app(
        PAYMENT_PROVIDERS="offline,stripe",
        STRIPE_SECRET_KEY="sk_test_doorstep",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_API_BASE="http://127.0.0.1:9",  # nothing listens: these tests never call Stripe
    )


def sign(body: bytes, secret=SECRET, at=None) -> str:
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def event(kind, obj, event_id=None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:20]}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2025-01-27",
            "data": {"object": obj},
        }
    ).encode()


def post(client, body, signature=None):
    return client.post(
        "/payments/stripe/webhook",
        data=body,
        headers={"Stripe-Signature": signature or sign(body), "Content-Type": "application/json"},
    )


def attempt_for(app, invoice, cents) -> PaymentAttempt:
    """An attempt as `checkout` leaves it once Stripe's page is open (redirected)."""
    with app.test_request_context():
        plan = payments.plan(
            [(invoice, cents)], {"partial_payments": True, "minimum_partial_cents": 0}
        )
        attempt = payments._open_attempt(
            invoice.customer, plan, "stripe", "Pat Payer", "pat@example.com", None, True
        )
    payments._transition(attempt.key, "redirected")
    return PaymentAttempt.get_by_id(attempt.id)


def session(attempt, payment_status="paid", status="complete", intent=None, source="doorstep"):
    """A `checkout.session` object as Stripe's API reference shapes it."""
    return {
        "id": f"cs_test_{attempt.key[:8]}",
        "object": "checkout.session",
        "mode": "payment",
        "status": status,
        "payment_status": payment_status,
        "amount_total": attempt.amount_cents,
        "currency": attempt.currency.lower(),
        "client_reference_id": attempt.key,
        "metadata": {"attempt": attempt.key, "source": source},
        "payment_intent": intent or f"pi_{attempt.key[:12]}",
    }


def test_a_card_payment_is_applied_once_however_often_the_webhook_comes(stripe_app, mailbox):
    invoice, _ = factories.invoice(total_cents=50_000)
    attempt = attempt_for(stripe_app, invoice, 50_000)
    client = stripe_app.test_client()
    body = event("checkout.session.completed", session(attempt))
    first = post(client, body)
    assert first.status_code == 200 and first.get_json()["receipt"]
    again = post(client, body)  # the same event redelivered
    assert again.status_code == 200
    assert again.get_json() == {
        "ok": True,
        "duplicate": True,
        "receipt": first.get_json()["receipt"],
    }
    other = post(client, event("checkout.session.completed", session(attempt)))  # a new id
    assert other.status_code == 200
    assert Payment.select().count() == 1
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    assert ProviderEvent.select().where(ProviderEvent.provider == "stripe").count() == 2
    assert mailbox.wait_for(1)[0]["To"] == "pat@example.com"


@pytest.mark.parametrize(
    "signature",
    [
        "t=1,v1=deadbeef",  # nonsense
        lambda body: sign(body, secret="whsec_someone_else"),  # I8: another secret
        lambda body: sign(body, at=int(time.time()) - 3600),  # expired: replayed an hour on
        "",
    ],
)
def test_bad_or_expired_signatures_are_refused_and_change_nothing(stripe_app, signature):
    """I8: only Stripe, with this endpoint's secret and a fresh timestamp, is believed."""
    invoice, _ = factories.invoice(total_cents=50_000)
    attempt = attempt_for(stripe_app, invoice, 50_000)
    body = event("checkout.session.completed", session(attempt))
    header = signature(body) if callable(signature) else signature
    response = stripe_app.test_client().post(
        "/payments/stripe/webhook", data=body, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 400
    assert not Payment.select().exists() and Invoice.get_by_id(invoice.id).balance_cents == 50_000


def test_a_bank_debit_is_pending_until_it_settles_in_any_order(stripe_app, mailbox):
    invoice, _ = factories.invoice(total_cents=50_000)
    attempt = attempt_for(stripe_app, invoice, 50_000)
    client = stripe_app.test_client()
    assert (
        post(client, event("checkout.session.completed", session(attempt, "unpaid"))).status_code
        == 200
    )
    payment = Payment.get()
    assert payment.status == "pending" and payment.provider == "stripe"
    assert PaymentAttempt.get_by_id(attempt.id).status == "processing"
    from portal.services import figures

    assert figures.pending_by_invoice([invoice.id])[invoice.id][0].amount_cents == 50_000
    assert Invoice.get_by_id(invoice.id).balance_cents == 50_000  # still owed meanwhile
    settled = post(client, event("checkout.session.async_payment_succeeded", session(attempt)))
    assert settled.status_code == 200
    assert Payment.get_by_id(payment.id).status == "applied"
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    # A late "completed" after the settlement changes nothing.
    post(client, event("checkout.session.completed", session(attempt, "unpaid")))
    assert Payment.select().count() == 1 and Payment.get_by_id(payment.id).status == "applied"

    # Out of order: the settlement arrives before "completed" for another debit.
    other, _ = factories.invoice(total_cents=20_000)
    second = attempt_for(stripe_app, other, 20_000)
    post(client, event("checkout.session.async_payment_succeeded", session(second)))
    post(client, event("checkout.session.completed", session(second, "unpaid")))
    applied = Payment.get(Payment.attempt == second.id)
    assert applied.status == "applied" and Invoice.get_by_id(other.id).balance_cents == 0


def test_a_failed_bank_debit_tells_the_payer_and_reopens_the_invoice(stripe_app, mailbox):
    invoice, _ = factories.invoice(total_cents=50_000)
    attempt = attempt_for(stripe_app, invoice, 50_000)
    client = stripe_app.test_client()
    post(client, event("checkout.session.completed", session(attempt, "unpaid")))
    mailbox.clear()
    post(client, event("checkout.session.async_payment_failed", session(attempt, "unpaid")))
    payment = Payment.get()
    assert payment.status == "rejected" and "bank" in payment.flag_reason
    assert PaymentAttempt.get_by_id(attempt.id).status == "failed"
    assert Invoice.get_by_id(invoice.id).balance_cents == 50_000
    message = mailbox.wait_for(1)[0]
    assert message["To"] == "pat@example.com" and "bank" in str(message)
    # The failure first and the late "processing" after it: still failed, nothing pending.
    other, _ = factories.invoice(total_cents=20_000)
    second = attempt_for(stripe_app, other, 20_000)
    post(client, event("checkout.session.async_payment_failed", session(second, "unpaid")))
    post(client, event("checkout.session.completed", session(second, "unpaid")))
    assert not Payment.select().where(Payment.attempt == second.id).exists()


def test_unknown_sessions(stripe_app):
    """A session another integration made on the same Stripe account is ignored (200); one
    this portal made for an attempt it does not know is answered 404, so Stripe retries it
    (a database restored from a backup must not swallow payments)."""
    invoice, _ = factories.invoice(total_cents=50_000)
    attempt = attempt_for(stripe_app, invoice, 50_000)
    client = stripe_app.test_client()
    foreign = session(attempt, source="someone-else")
    assert post(client, event("checkout.session.completed", foreign)).get_json()["ignored"]
    lost = session(attempt)
    lost["metadata"]["attempt"] = lost["client_reference_id"] = str(uuid.uuid4())
    assert post(client, event("checkout.session.completed", lost)).status_code == 404
    assert AuditLog.select().where(AuditLog.action == "security.alert").exists()
    assert not Payment.select().exists()
    # Types Doorstep does not act on are acknowledged.
    assert post(client, event("customer.created", {"id": "cus_1"})).status_code == 200


def test_an_amount_other_than_asked_is_flagged_not_applied(stripe_app):
    """I10: Stripe reporting another amount than the attempt's is never applied."""
    invoice, _ = factories.invoice(total_cents=50_000)
    attempt = attempt_for(stripe_app, invoice, 50_000)
    wrong = session(attempt)
    wrong["amount_total"] = 5_000
    post(stripe_app.test_client(), event("checkout.session.completed", wrong))
    assert PaymentAttempt.get_by_id(attempt.id).status == "flagged"
    assert not Payment.select().exists()


def test_a_refund_or_dispute_in_stripe_takes_the_money_back(stripe_app):
    first, _ = factories.invoice(total_cents=30_000, discount_bp=200, discount_days=10)
    second, _ = factories.invoice(first.customer, total_cents=20_000)
    with stripe_app.test_request_context():
        plan = payments.plan(
            [(first, 29_400), (second, 20_000)],
            {"partial_payments": True, "minimum_partial_cents": 0},
        )
        attempt = payments._open_attempt(
            first.customer, plan, "stripe", "Pat", "pat@example.com", None, True
        )
    payments._transition(attempt.key, "redirected")
    attempt = PaymentAttempt.get_by_id(attempt.id)
    client = stripe_app.test_client()
    post(client, event("checkout.session.completed", session(attempt, intent="pi_refund_me")))
    assert Invoice.get_by_id(first.id).balance_cents == 0  # with its 2% discount

    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_refund_me",
        "amount": 49_400,
        "amount_refunded": 10_000,
        "currency": "usd",
    }
    body = event("charge.refunded", charge)
    assert post(client, body).status_code == 200
    assert post(client, body).get_json()["duplicate"]
    payment = Payment.get()
    assert payment.flagged and "Refunded" in payment.flag_reason
    # $100.00 comes back off the newest application (the second invoice).
    assert Invoice.get_by_id(second.id).balance_cents == 10_000
    assert Invoice.get_by_id(first.id).balance_cents == 0
    # Stripe reports the running total: a second refund event to $150.00 takes $50.00 more.
    charge["amount_refunded"] = 15_000
    post(client, event("charge.refunded", charge))
    assert Invoice.get_by_id(second.id).balance_cents == 15_000
    assert sum(r.amount_cents for r in Refund.select()) == 15_000
    assert AuditLog.select().where(AuditLog.action == "payment.refund_at_provider").count() == 2

    # A dispute of the whole charge: every cent comes back off, the discount with it.
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "payment_intent": "pi_refund_me",
        "amount": 49_400,
        "currency": "usd",
    }
    post(client, event("charge.dispute.created", dispute))
    assert Invoice.get_by_id(first.id).balance_cents == 30_000
    assert Invoice.get_by_id(second.id).balance_cents == 20_000
    assert "Disputed" in Payment.get().flag_reason
    # A refund for a payment this database never saw: 404, so Stripe retries.
    charge["payment_intent"] = "pi_unknown"
    assert post(client, event("charge.refunded", charge)).status_code == 404


def test_stripe_needs_its_keys_from_the_environment(make_app):
    with pytest.raises(ValueError, match="PORTAL_STRIPE_SECRET_KEY"):
        make_app(PAYMENT_PROVIDERS="offline,stripe", STRIPE_WEBHOOK_SECRET=SECRET)
    with pytest.raises(ValueError, match="PORTAL_STRIPE_WEBHOOK_SECRET"):
        make_app(PAYMENT_PROVIDERS="offline,stripe", STRIPE_SECRET_KEY="sk_test_x")
