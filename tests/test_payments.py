"""The payments core: attempts, providers, exactly-once application, offline payments, receipts.

Each test names the row of docs/security-controls.md section I that it covers. The concurrency
tests run on whichever database the suite runs on (SQLite by default, PostgreSQL with
PORTAL_TEST_DATABASE_URL); CI runs both.

Early-payment discount rule (portal/money.py, tested here through the service): an invoice
with `discount_bp` / `discount_days` offers that percentage of its *total*, but only on a
payment that settles the whole remaining balance on or before issue date + discount_days.
A partial payment inside the window earns no discount and does not forfeit it: a later
payment that clears the rest inside the window still takes the full discount. After the
window there is no discount. The discount planned when the payer started is kept even if
the provider confirms after the deadline (the payer acted in time).
"""

import json
import logging
import re
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
import time_machine
from flask import session
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from portal import money
from portal.db import db, utcnow
from portal.models import (
    ALL_MODELS,
    AuditLog,
    Counter,
    Invoice,
    OutboxMessage,
    Payment,
    PaymentApplication,
    PaymentAttempt,
    PaymentAttemptItem,
)
from portal.models import (
    TestCheckoutSession as CheckoutSession,
)
from portal.services import outbox, payments, providers, settings
from portal.services.providers import Event

from . import factories

TEMPLATES = Path(__file__).resolve().parents[1] / "portal" / "templates"
TC = providers.PROVIDERS["test-checkout"]


def start(app, invoice, cents, provider="test-checkout", owner="payer-1"):
    """Start paying one invoice as the browser `owner` (its session's payer id)."""
    # A fresh app context per call, as each request has in production (its own `g`).
    with app.app_context(), app.test_request_context("/pay/invoice", method="POST"):
        session["payer"] = owner
        return payments.checkout(
            invoice.customer,
            [(invoice, cents)],
            provider,
            "Pat Payer",
            "pat@example.com",
            guest=True,
        )


def succeeded(attempt, amount=None, reference=None, status="succeeded"):
    return Event(
        provider=attempt.provider,
        attempt_key=attempt.key,
        status=status,
        reference=reference or f"tcp_{attempt.key[:12]}",
        amount_cents=attempt.amount_cents if amount is None else amount,
        currency=attempt.currency,
        event_id=f"evt_{attempt.key[:12]}",
    )


def webhook_body(attempt, amount=None, reference=None, kind="checkout.succeeded"):
    return json.dumps(
        {
            "id": f"evt_{attempt.key[:12]}",
            "type": kind,
            "data": {
                "attempt_key": attempt.key,
                "payment_ref": reference or f"tcp_{attempt.key[:12]}",
                "amount": attempt.amount_cents if amount is None else amount,
                "currency": attempt.currency,
            },
        }
    ).encode()


def post_webhook(client, body, signature):
    return client.post(
        "/payments/webhook/test-checkout",
        data=body,
        headers={"Doorstep-Signature": signature, "Content-Type": "application/json"},
    )


def fresh(invoice) -> Invoice:
    return Invoice.get_by_id(invoice.id)


def guest_pays(client, invoice, code, amount, outcome="pay"):
    """The whole guest flow over HTTP: lookup, pay form, test checkout, return, status page."""
    assert client.post("/pay/", data={"number": invoice.number, "secret": code}).status_code == 303
    response = client.post(
        "/pay/invoice",
        data={
            "amount": amount,
            "payer_name": "Pat Payer",
            "payer_email": "pat@example.com",
            "provider": "test-checkout",
        },
    )
    assert response.status_code == 303, response.text
    checkout_url = response.headers["Location"]
    assert "/test-checkout/" in checkout_url
    page = client.get(checkout_url)
    assert "TEST MODE" in page.text
    back = client.post(checkout_url, data={"outcome": outcome})
    assert back.status_code == 303
    status = client.get(back.headers["Location"])
    assert status.status_code == 303
    return client.get(status.headers["Location"])


def check_invariants():
    """Money is conserved and no invoice is over- or under-paid."""
    for invoice in Invoice.select():
        assert 0 <= invoice.amount_paid_cents + invoice.discount_taken_cents <= invoice.total_cents
        applied = sum(
            a.amount_cents
            for a in PaymentApplication.select().where(PaymentApplication.invoice == invoice.id)
        )
        assert applied == invoice.amount_paid_cents
    for payment in Payment.select().where(Payment.status == "applied"):
        applied = sum(a.amount_cents for a in payment.applications)
        assert applied + payment.unapplied_cents == payment.amount_cents
        assert payment.flagged or not payment.unapplied_cents or payment.flag_reason


# --- I1 ---------------------------------------------------------------------------------


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number][::-1]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    return total % 10 == 0


def test_no_card_data_anywhere(app, client, caplog):
    """I1: no template has a card field, no column can hold card data, and a whole payment
    flow logs nothing that looks like a card number."""
    card_field = re.compile(
        r'<input[^>]*name="(card|cc|cvc|cvv|cvc2|pan|exp)([-_]\w*)?"|autocomplete="cc-', re.I
    )
    for path in TEMPLATES.rglob("*.html"):
        assert not card_field.search(path.read_text()), path
    for model in ALL_MODELS:
        for name in model._meta.fields:
            assert not re.search(r"card_number|cvc|cvv|^pan$|expiry", name), (model, name)
    caplog.set_level(logging.DEBUG)
    invoice, code = factories.invoice(total_cents=50_000)
    guest_pays(client, invoice, code, "100.00")
    # Our own log lines (the database driver's pool logs connection ids, which are not ours).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("portal"))
    logged += "\n".join(a.detail for a in AuditLog.select())
    logged += "\n".join(m.body_text for m in OutboxMessage.select())
    for candidate in re.findall(r"(?<!\d)\d{13,19}(?!\d)", logged):
        assert not luhn_ok(candidate), candidate


# --- I2, I3 -----------------------------------------------------------------------------


def test_attempt_is_recorded_before_the_provider_and_a_double_click_reuses_it(app, client):
    """I2: the attempt (with its UUID idempotency key) exists before the provider session,
    the provider keeps one session per attempt key, and the same POST twice lands on the
    same attempt and the same checkout page."""
    invoice, code = factories.invoice(total_cents=20_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    data = {
        "amount": "120.00",
        "payer_name": "Pat",
        "payer_email": "pat@example.com",
        "provider": "test-checkout",
    }
    first = client.post("/pay/invoice", data=data)
    second = client.post("/pay/invoice", data=data)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    attempt = PaymentAttempt.get()
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", attempt.key
    )
    assert attempt.status == "redirected" and attempt.amount_cents == 12_000
    assert CheckoutSession.select().count() == 1
    # The provider honours the key: starting the same attempt again is the same session.
    with app.test_request_context():
        assert TC.start(attempt) == TC.start(attempt)
    assert CheckoutSession.select().count() == 1
    # Another amount is a new attempt; the old one is cancelled with its provider session.
    data["amount"] = "50.00"
    client.post("/pay/invoice", data=data)
    assert PaymentAttempt.get_by_id(attempt.id).status == "cancelled"
    assert CheckoutSession.get(CheckoutSession.attempt_key == attempt.key).status == ("cancelled")
    assert PaymentAttemptItem.select().where(PaymentAttemptItem.is_open == True).count() == 1  # noqa: E712


def test_offline_double_click_records_one_pending_payment(app, client, mailbox):
    """I2: submitting the same bank-transfer payment twice records one pending payment and
    sends one instructions email."""
    invoice, code = factories.invoice(total_cents=20_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    data = {"amount": "80.00", "payer_name": "Pat", "payer_email": "pat@example.com"}
    data["provider"] = "offline"
    first = client.post("/pay/invoice", data=data)
    second = client.post("/pay/invoice", data=data)
    assert first.headers["Location"] == second.headers["Location"]
    assert Payment.select().count() == 1 and PaymentAttempt.select().count() == 1
    assert OutboxMessage.select().where(OutboxMessage.kind == "payment_pending").count() == 1


@pytest.fixture
def capp(make_app, mailbox):
    """An app whose connection pool has room for 20 threads at once (PostgreSQL)."""
    app = make_app(DATABASE_MAX_CONNECTIONS=40)
    with app.app_context():
        db.connect(reuse_if_open=True)
        yield app
        if not db.is_closed():
            db.close()


def run_threads(count, target):
    """Run `target(i)` in `count` threads released together; returns results and errors."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def worker(i):
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


def threaded_start(app, invoice, cents, owner):
    with app.app_context():
        try:
            return start(app, invoice, cents, owner=owner).attempt.key
        finally:
            if not db.is_closed():
                db.close()


def test_twenty_concurrent_starts_by_one_payer_make_one_attempt(capp):
    """I3: 20 concurrent "pay" clicks of one payer for one invoice make exactly one attempt
    and one provider session; every click lands on it."""
    invoice, _ = factories.invoice(total_cents=100_000)
    keys, errors = run_threads(20, lambda i: threaded_start(capp, invoice, 30_000, "same"))
    assert errors == []
    assert len(set(keys)) == 1
    assert PaymentAttempt.select().count() == 1
    assert CheckoutSession.select().count() == 1


def test_twenty_concurrent_payers_leave_one_open_attempt(capp):
    """I3: 20 different payers starting at once for one invoice leave exactly one open
    attempt; the others were superseded (cancelled) or told a payment is in progress."""
    invoice, _ = factories.invoice(total_cents=100_000)
    keys, errors = run_threads(20, lambda i: threaded_start(capp, invoice, 30_000, f"p{i}"))
    assert all(isinstance(e, payments.PaymentError) for e in errors), errors
    assert len(errors) + len([k for k in keys if k]) == 20
    open_items = PaymentAttemptItem.select().where(PaymentAttemptItem.is_open.is_null(False))
    assert open_items.count() == 1
    statuses = [a.status for a in PaymentAttempt.select()]
    assert statuses.count("redirected") == 1
    assert set(statuses) <= {"redirected", "cancelled"}
    assert CheckoutSession.select().where(CheckoutSession.status == "open").count() == 1


# --- I4 ---------------------------------------------------------------------------------


def test_two_payers_of_60_on_100_at_once(capp, mailbox):
    """I4: two payers each pay 60.00 on a 100.00 invoice and both payments are confirmed at
    once: 100.00 is applied (60 + 40), the other 20.00 is kept as flagged unapplied credit,
    and the balance never goes negative."""
    invoice, _ = factories.invoice(total_cents=10_000)
    first = start(capp, invoice, 6_000, owner="a").attempt
    second = start(capp, invoice, 6_000, owner="b").attempt  # supersedes the first
    assert PaymentAttempt.get_by_id(first.id).status == "cancelled"
    # The first payer had already paid at the provider: money for a cancelled attempt is real.
    bodies = [webhook_body(first, reference="tcp_a"), webhook_body(second, reference="tcp_b")]
    signatures = [TC.sign_webhook(b) for b in bodies]

    def deliver(i):
        response = post_webhook(capp.test_client(), bodies[i], signatures[i])
        return response.status_code

    statuses, errors = run_threads(2, deliver)
    assert errors == [] and statuses == [200, 200]
    invoice = fresh(invoice)
    assert invoice.amount_paid_cents == 10_000 and invoice.balance_cents == 0
    paid = list(Payment.select())
    assert len(paid) == 2 and sum(p.amount_cents for p in paid) == 12_000
    assert sorted(p.unapplied_cents for p in paid) == [0, 2_000]
    flagged = [p for p in paid if p.flagged]
    assert len(flagged) == 1 and "refund" in flagged[0].flag_reason
    check_invariants()


def test_the_same_webhook_five_times_at_once_applies_once(capp, mailbox):
    """I4: one signed webhook delivered 5 times concurrently makes exactly one Payment and
    one receipt; every delivery answers 200 with the same receipt number, also one that
    arrives after another has finished (the duplicate answer)."""
    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(capp, invoice, 4_000).attempt
    body = webhook_body(attempt)
    signature = TC.sign_webhook(body)

    def deliver(i):
        return post_webhook(capp.test_client(), body, signature).get_json()

    answers, errors = run_threads(5, deliver)
    assert errors == []
    assert {a["receipt"] for a in answers} == {Payment.get().receipt_number}
    assert Payment.select().count() == 1
    assert fresh(invoice).balance_cents == 6_000
    assert OutboxMessage.select().where(OutboxMessage.kind == "receipt").count() == 1
    assert len(mailbox.wait_for(1)) == 1
    check_invariants()


def test_a_redelivered_webhook_answers_with_the_same_receipt(capp, mailbox):
    """I4: a delivery that comes after the event was handled changes nothing and answers with
    the receipt the first one made (it answered without one, which made the test above
    fail when one of its five deliveries came last)."""
    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(capp, invoice, 4_000).attempt
    body = webhook_body(attempt)
    signature = TC.sign_webhook(body)
    first = post_webhook(capp.test_client(), body, signature).get_json()
    again = post_webhook(capp.test_client(), body, signature).get_json()
    assert again == {"ok": True, "duplicate": True, "receipt": first["receipt"]}
    assert first["receipt"] == Payment.get().receipt_number and Payment.select().count() == 1


def test_conditional_update_and_checks_are_the_backstop(app):
    """I4/I5: the database itself refuses an over-applied invoice and a duplicate provider id."""
    from peewee import IntegrityError

    invoice, _ = factories.invoice(total_cents=10_000)
    with pytest.raises(IntegrityError), db.atomic():
        Invoice.update(amount_paid_cents=10_001).where(Invoice.id == invoice.id).execute()
    attempt = start(app, invoice, 1_000).attempt
    payments.apply_event(succeeded(attempt, reference="dup"))
    with pytest.raises(IntegrityError), db.atomic():
        Payment.create(
            receipt_number="R-X",
            provider="test-checkout",
            provider_reference="dup",
            customer=invoice.customer,
            amount_cents=1,
            currency="USD",
        )


# --- I6 ---------------------------------------------------------------------------------


def test_crash_inside_the_apply_transaction_rolls_everything_back(app, client, monkeypatch):
    """I6: an exception after the Payment insert and the balance update leaves no payment,
    no balance change, no receipt number used, no email and the attempt still open; the
    redelivered webhook then applies it exactly once."""
    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(app, invoice, 2_500).attempt
    body = webhook_body(attempt)

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(payments, "_email", crash)
    response = post_webhook(client, body, TC.sign_webhook(body))
    assert response.status_code == 500
    assert Payment.select().count() == 0
    assert PaymentApplication.select().count() == 0
    assert fresh(invoice).amount_paid_cents == 0
    assert PaymentAttempt.get_by_id(attempt.id).status == "redirected"
    assert OutboxMessage.select().count() == 0
    assert Counter.get_or_none(Counter.name == "receipt") is None
    assert not AuditLog.select().where(AuditLog.action == "payment.applied").exists()
    monkeypatch.undo()
    response = post_webhook(client, body, TC.sign_webhook(body))
    assert response.status_code == 200
    assert Payment.select().count() == 1 and fresh(invoice).amount_paid_cents == 2_500
    check_invariants()


# --- I7, I8 -----------------------------------------------------------------------------


def test_forged_or_tampered_return_is_refused(app, client):
    """I7: the browser return is only trusted when signed by us for this attempt: garbage,
    another key's signature, and a valid result for another attempt answer 400."""
    invoice, _ = factories.invoice(total_cents=10_000)
    other, _ = factories.invoice(total_cents=10_000)
    attempt = start(app, invoice, 5_000).attempt
    other_attempt = start(app, other, 5_000, owner="someone-else").attempt
    event = succeeded(attempt, reference="tcp_forged").__dict__
    forged = URLSafeTimedSerializer("not-our-secret", salt="doorstep.checkout").dumps(event)
    with app.test_request_context():
        session_row = TC.session_for(other_attempt)
        CheckoutSession.update(status="paid", payment_ref="tcp_real").where(
            CheckoutSession.id == session_row.id
        ).execute()
        valid_for_other = TC.return_token(TC.session_for(other_attempt))
    base = f"/payments/return/test-checkout/{attempt.key}"
    for result in ["", "garbage", forged, valid_for_other]:
        response = client.get(base, query_string={"result": result} if result else None)
        assert response.status_code == 400
        assert "could not be verified" in response.text
    assert client.get(f"/payments/return/stripe/{attempt.key}?result=x").status_code == 400
    assert Payment.select().count() == 0
    assert fresh(invoice).amount_paid_cents == 0 and fresh(other).amount_paid_cents == 0


def test_reconcile_applies_a_payment_whose_return_was_missed(app, client):
    """I7: the payer paid at the provider but never came back; reconciliation asks the
    provider and applies the payment once; abandoned attempts expire."""
    invoice, _ = factories.invoice(total_cents=10_000)
    checkout = start(app, invoice, 3_000)
    # The payer pays on the provider page and closes the tab before the redirect back.
    path = checkout.redirect_url
    assert client.post(path, data={"outcome": "pay"}).status_code == 303
    assert Payment.select().count() == 0
    abandoned_invoice, _ = factories.invoice(total_cents=5_000)
    abandoned = start(app, abandoned_invoice, 5_000, owner="gone").attempt
    assert payments.reconcile(grace=timedelta(0)) == 1
    assert Payment.get().amount_cents == 3_000 and fresh(invoice).balance_cents == 7_000
    assert payments.reconcile(grace=timedelta(0)) == 0
    with time_machine.travel(utcnow() + timedelta(hours=3)):
        assert payments.reconcile() == 1
    assert PaymentAttempt.get_by_id(abandoned.id).status == "expired"
    assert TC.session_for(abandoned).status == "cancelled"
    assert Payment.select().count() == 1


def test_webhook_authenticity(app, client, caplog):
    """I8: unsigned, wrongly signed, stale and malformed webhooks answer 400 and change
    nothing; an unknown provider too."""
    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(app, invoice, 5_000).attempt
    body = webhook_body(attempt)
    now = int(utcnow().timestamp())
    good = TC.sign_webhook(body, now)
    cases = [
        "",
        good.replace("v1=", "v1=0"),
        TC.sign_webhook(body + b" ", now),
        TC.sign_webhook(body, now - 301),
        "t=abc,v1=00",
    ]
    caplog.set_level(logging.WARNING)
    for signature in cases:
        assert post_webhook(client, body, signature).status_code == 400, signature
    malformed = b'{"type": "checkout.succeeded"}'
    assert post_webhook(client, malformed, TC.sign_webhook(malformed)).status_code == 400
    assert client.post("/payments/webhook/nope", data=body).status_code == 400
    assert "security alert" in caplog.text
    assert Payment.select().count() == 0 and fresh(invoice).amount_paid_cents == 0
    assert post_webhook(client, body, good).status_code == 200
    assert fresh(invoice).amount_paid_cents == 5_000


@pytest.mark.parametrize("amount", [50_000, 4_999])
def test_amount_mismatch_is_flagged_not_applied(app, client, amount):
    """I8/I10: a signed event whose amount differs from the attempt (40 asked, 400 paid, or
    a cent short) flags the attempt, raises an alert and applies nothing."""
    invoice, _ = factories.invoice(total_cents=100_000)
    attempt = start(app, invoice, 5_000).attempt
    body = webhook_body(attempt, amount=amount)
    assert post_webhook(client, body, TC.sign_webhook(body)).status_code == 200
    assert PaymentAttempt.get_by_id(attempt.id).status == "flagged"
    assert Payment.select().count() == 0 and fresh(invoice).amount_paid_cents == 0
    alert = AuditLog.get(AuditLog.action == "security.alert")
    assert json.loads(alert.detail)["paid"] == amount


def test_event_for_an_unknown_attempt_is_an_alert(app, client):
    """I8: a correctly signed event for an attempt we never made applies nothing, and is
    answered 404, not 200: a database restored from a backup must let the provider retry
    the payments it never saw (issue 15), instead of telling it they were handled."""
    invoice, _ = factories.invoice()
    ghost = PaymentAttempt(key="00000000-0000-4000-8000-000000000000", amount_cents=100)
    ghost.currency, ghost.provider = "USD", "test-checkout"
    body = webhook_body(ghost)
    response = post_webhook(client, body, TC.sign_webhook(body))
    assert response.status_code == 404 and "receipt" not in response.get_json()
    assert AuditLog.select().where(AuditLog.action == "security.alert").exists()
    assert Payment.select().count() == 0


# --- I9 ---------------------------------------------------------------------------------


def test_attempt_state_machine(app, caplog):
    """I9: a second success is a no-op returning the same payment; failed or redirected
    after succeeded are refused and audited; a declined attempt cannot be re-opened or
    cancelled."""
    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(app, invoice, 1_000).attempt
    assert attempt.status == "redirected"
    payment = payments.apply_event(succeeded(attempt))
    assert payments.apply_event(succeeded(attempt)).id == payment.id
    caplog.set_level(logging.INFO)
    assert payments.apply_event(succeeded(attempt, status="failed")) is None
    assert payments._transition(attempt.key, "redirected") is False
    assert PaymentAttempt.get_by_id(attempt.id).status == "succeeded"
    refused = AuditLog.select().where(AuditLog.action == "payment.transition_refused")
    assert refused.count() == 2
    assert "refused attempt" in caplog.text
    declined = start(app, invoice, 2_000, owner="other").attempt
    payments.apply_event(succeeded(declined, status="failed"))
    assert PaymentAttempt.get_by_id(declined.id).status == "failed"
    assert payments._transition(declined.key, "redirected") is False
    assert payments._transition(declined.key, "cancelled") is False
    assert fresh(invoice).amount_paid_cents == 1_000


def test_success_after_a_decline_applies_but_a_flagged_attempt_waits(app):
    """I9: a provider that declines and then takes the money on a retry is believed (the
    money is real); an attempt flagged for a wrong amount applies nothing until staff act."""
    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(app, invoice, 1_000).attempt
    payments.apply_event(succeeded(attempt, status="failed"))
    payment = payments.apply_event(succeeded(attempt))
    assert payment is not None and fresh(invoice).amount_paid_cents == 1_000
    assert PaymentAttempt.get_by_id(attempt.id).status == "succeeded"
    other, _ = factories.invoice(total_cents=10_000)
    flagged = start(app, other, 1_000, owner="b").attempt
    assert payments.apply_event(succeeded(flagged, amount=9_999)) is None
    assert payments.apply_event(succeeded(flagged, reference="later")) is None
    assert PaymentAttempt.get_by_id(flagged.id).status == "flagged"
    assert fresh(other).amount_paid_cents == 0
    assert Payment.select().count() == 1


def test_declined_and_cancelled_checkouts_change_nothing(app, client):
    """I9: declining or cancelling at the test checkout leaves the invoice as it was and the
    status page says so."""
    invoice, code = factories.invoice(total_cents=10_000)
    page = guest_pays(client, invoice, code, "20.00", outcome="decline")
    assert "The payment was declined" in page.text
    assert PaymentAttempt.get().status == "failed"
    page = guest_pays(client, invoice, code, "20.00", outcome="cancel")
    assert "The payment was cancelled" in page.text
    assert Payment.select().count() == 0 and fresh(invoice).amount_paid_cents == 0


# --- offline payments -------------------------------------------------------------------


def test_offline_payment_waits_for_staff(app, client, mailbox):
    """Offline: the payment is pending (nothing applied) with transfer instructions by email;
    staff confirm it, it is applied and a receipt is sent; confirming twice is refused."""
    invoice, code = factories.invoice(total_cents=40_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    response = client.post(
        "/pay/invoice",
        data={
            "amount": "150.00",
            "payer_name": "Pat",
            "payer_email": "pat@example.com",
            "provider": "offline",
        },
    )
    status = client.get(response.headers["Location"])
    payment = Payment.get()
    assert payment.status == "pending"
    assert payment.receipt_number in status.text and "awaiting your transfer" in status.text
    assert "12-3456-7890123" in status.text
    assert fresh(invoice).amount_paid_cents == 0
    message = mailbox.wait_for(1)[0]
    assert payment.receipt_number in message["Subject"]
    assert "12-3456-7890123" in message.get_content()
    staff = factories.staff()
    payments.confirm_offline(payment, staff)
    assert fresh(invoice).balance_cents == 25_000
    assert Payment.get_by_id(payment.id).status == "applied"
    with pytest.raises(payments.PaymentError):
        payments.confirm_offline(payment, staff)
    outbox.deliver_due()
    receipt = mailbox.wait_for(2)[1]
    assert receipt["Subject"].startswith(f"Receipt {payment.receipt_number}")
    assert "$250.00" in receipt.get_content()  # balance now
    check_invariants()


def test_offline_payment_rejected(app, client):
    """Offline: staff never received it: rejected, nothing applied, cannot be confirmed later,
    and the payer's status page says so."""
    invoice, code = factories.invoice(total_cents=40_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    data = {"amount": "100.00", "payer_name": "Pat", "payer_email": "pat@example.com"}
    status_url = client.post("/pay/invoice", data={**data, "provider": "offline"}).location
    payment = Payment.get()
    staff = factories.staff()
    assert payments.reject_offline(payment, staff, "never arrived").status == "rejected"
    assert "We did not receive this payment" in client.get(status_url).text
    with pytest.raises(payments.PaymentError):
        payments.confirm_offline(payment, staff)
    with pytest.raises(payments.PaymentError):
        payments.reject_offline(payment, staff, "again")
    assert fresh(invoice).amount_paid_cents == 0


def test_void_payment_reverses_its_applications(app):
    """Void: an applied payment (with its discount) is taken back off the invoice."""
    invoice, _ = factories.invoice(total_cents=10_000, discount_bp=500, discount_days=10)
    attempt = start(app, invoice, 9_500).attempt
    payment = payments.apply_event(succeeded(attempt))
    assert fresh(invoice).balance_cents == 0 and fresh(invoice).discount_taken_cents == 500
    voided = payments.void_payment(payment, factories.staff(), "cheque bounced")
    assert voided.status == "void" and voided.voided_at is not None
    invoice = fresh(invoice)
    assert invoice.amount_paid_cents == 0 and invoice.discount_taken_cents == 0
    assert PaymentApplication.select().count() == 0
    with pytest.raises(payments.PaymentError):
        payments.void_payment(payment, factories.staff(), "twice")
    check_invariants()


def test_flagged_credit_can_be_resolved(app):
    """Unapplied credit stays flagged until staff resolve it."""
    invoice, _ = factories.invoice(total_cents=5_000)
    first = start(app, invoice, 5_000, owner="a").attempt
    second = start(app, invoice, 5_000, owner="b").attempt
    payments.apply_event(succeeded(first))
    credit = payments.apply_event(succeeded(second))
    assert credit.flagged and credit.unapplied_cents == 5_000
    assert PaymentApplication.select().where(PaymentApplication.payment == credit.id).count() == 0
    resolved = payments.resolve_flag(credit, factories.staff(), "refunded")
    assert not resolved.flagged
    check_invariants()


# --- receipts ---------------------------------------------------------------------------


def test_receipt_page_and_email(app, client, mailbox):
    """Receipt: the page and the email carry the receipt number, amount, invoice and the
    remaining balance."""
    invoice, code = factories.invoice(total_cents=100_000)
    page = guest_pays(client, invoice, code, "250.00")
    payment = Payment.get()
    assert payment.status == "applied" and payment.receipt_number.startswith("R-")
    for text in (payment.receipt_number, "$250.00", invoice.number, "$750.00"):
        assert text in page.text
    message = mailbox.wait_for(1)[0]
    assert message["To"] == "pat@example.com"
    assert payment.receipt_number in message["Subject"] and "$250.00" in message["Subject"]
    body = message.get_content()
    assert f"Invoice {invoice.number}: paid $250.00; balance now $750.00" in body
    assert payment.receipt_number in body


def test_receipt_numbers_are_unique(app):
    """Receipt numbers never repeat, across providers."""
    numbers = []
    for n in range(4):
        invoice, _ = factories.invoice(total_cents=10_000)
        attempt = start(app, invoice, 2_000 + n, owner=f"p{n}").attempt
        numbers.append(payments.apply_event(succeeded(attempt)).receipt_number)
    invoice, _ = factories.invoice(total_cents=10_000)
    start(app, invoice, 3_000, provider="offline")
    numbers.append(Payment.get(Payment.provider == "offline").receipt_number)
    assert len(set(numbers)) == 5


def test_status_page_is_only_for_the_browser_that_paid(app, client):
    """A payment's status page answers 404 to another browser and to unknown keys."""
    invoice, code = factories.invoice(total_cents=10_000)
    guest_pays(client, invoice, code, "20.00")
    key = PaymentAttempt.get().key
    assert client.get(f"/payments/{key}").status_code == 200
    assert app.test_client().get(f"/payments/{key}").status_code == 404
    assert client.get("/payments/not-a-key").status_code == 404


# --- discount rule ----------------------------------------------------------------------


def discounted_invoice(issued_days_ago=5, days=10, total=100_000, bp=200):
    return factories.invoice(
        total_cents=total,
        issue_date=date.today() - timedelta(days=issued_days_ago),
        discount_bp=bp,
        discount_days=days,
    )[0]


def test_full_payment_in_the_window_takes_the_discount(app):
    """Discount: paying the discounted balance in the window settles the invoice and records
    the discount on the application; the undiscounted balance is refused as too much."""
    invoice = discounted_invoice()
    with pytest.raises(payments.PaymentError, match=r"most you can pay .* \$980\.00"):
        start(app, invoice, 100_000)
    attempt = start(app, invoice, 98_000).attempt
    assert attempt.items[0].discount_cents == 2_000
    payment = payments.apply_event(succeeded(attempt))
    invoice = fresh(invoice)
    assert invoice.balance_cents == 0 and invoice.discount_taken_cents == 2_000
    application = payment.applications[0]
    assert (application.amount_cents, application.discount_cents) == (98_000, 2_000)
    check_invariants()


def test_partial_payment_in_the_window_keeps_the_later_discount(app):
    """Discount: a partial payment in the window earns nothing but does not forfeit the
    discount; clearing the rest in the window takes the whole 2 % of the total."""
    invoice = discounted_invoice()
    first = start(app, invoice, 30_000).attempt
    assert first.items[0].discount_cents == 0
    payments.apply_event(succeeded(first))
    invoice = fresh(invoice)
    assert invoice.balance_cents == 70_000 and invoice.discount_taken_cents == 0
    second = start(app, invoice, 68_000, owner="later").attempt
    payments.apply_event(succeeded(second))
    invoice = fresh(invoice)
    assert invoice.balance_cents == 0 and invoice.discount_taken_cents == 2_000
    assert invoice.amount_paid_cents == 98_000
    check_invariants()


def test_no_discount_after_the_window(app):
    """Discount: after issue date + discount days the discounted amount is only a part
    payment and the invoice keeps owing the difference."""
    invoice = discounted_invoice(issued_days_ago=11, days=10)
    attempt = start(app, invoice, 98_000).attempt
    assert attempt.items[0].discount_cents == 0
    payments.apply_event(succeeded(attempt))
    invoice = fresh(invoice)
    assert invoice.balance_cents == 2_000 and invoice.discount_taken_cents == 0


def test_discount_planned_in_time_survives_a_late_confirmation(app):
    """Discount: started on the last day, confirmed the next day: the payer acted in time."""
    invoice = discounted_invoice(issued_days_ago=10, days=10)
    attempt = start(app, invoice, 98_000).attempt
    with time_machine.travel(utcnow() + timedelta(days=1)):
        payments.apply_event(succeeded(attempt))
    assert fresh(invoice).balance_cents == 0 and fresh(invoice).discount_taken_cents == 2_000


def test_pay_page_offers_the_discount_until_its_deadline(client):
    """Discount: the pay page shows the discounted amount and its expiry date, and defaults
    the amount to it."""
    invoice = discounted_invoice()
    code = "0123456789AB"
    from portal.security import hash_code

    Invoice.update(quick_pay_hash=hash_code(code)).where(Invoice.id == invoice.id).execute()
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    page = client.get("/pay/invoice").text
    deadline = invoice.issue_date + timedelta(days=10)
    assert "$980.00" in page and "$20.00" in page
    assert f"{deadline:%b} {deadline.day}, {deadline.year}" in page
    assert 'value="980.00"' in page


def test_the_service_refuses_what_the_plan_refuses(app):
    """A10 in the service: zero, negative, non-integer, void invoices, another customer's
    invoice and a disabled provider are refused before any attempt is written."""
    invoice, _ = factories.invoice(total_cents=10_000)
    voided, _ = factories.invoice(total_cents=10_000, status="void")
    stranger, _ = factories.invoice(total_cents=10_000)
    for lines, provider in [
        ([(invoice, 0)], "test-checkout"),
        ([(invoice, -5)], "test-checkout"),
        ([(invoice, 10.5)], "test-checkout"),
        ([(voided, 1_000)], "test-checkout"),
        ([], "test-checkout"),
        ([(invoice, 1_000)], "bitcoin"),
    ]:
        with pytest.raises(payments.PaymentError), app.app_context(), app.test_request_context():
            payments.checkout(invoice.customer, lines, provider, "P", "p@example.com")
    with pytest.raises(payments.PaymentError), app.app_context(), app.test_request_context():
        payments.checkout(invoice.customer, [(stranger, 1_000)], "offline", "P", "p@example.com")
    settings.save({"partial_payments": False})
    with (
        pytest.raises(payments.PaymentError, match="in full"),
        app.app_context(),
        app.test_request_context(),
    ):
        payments.checkout(invoice.customer, [(invoice, 1_000)], "offline", "P", "p@example.com")
    assert PaymentAttempt.select().count() == 0


def test_webhook_needs_no_csrf_token_but_a_signature(make_app, mailbox):
    """I8/A12: with CSRF on, the provider's webhook (which has no session) is exempt from
    CSRF and is authenticated by its signature instead."""
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        invoice, _ = factories.invoice(total_cents=10_000)
        attempt = start(app, invoice, 1_000).attempt
        body = webhook_body(attempt)
        signature = TC.sign_webhook(body)
    client = app.test_client()
    assert post_webhook(client, body, "").status_code == 400
    # Sent as a form-encoded body (curl -d's default): the signature is still checked over
    # the raw bytes, which nothing before the view may consume.
    response = client.post(
        "/payments/webhook/test-checkout",
        data=body,
        headers={
            "Doorstep-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert post_webhook(client, body, signature).status_code == 200  # a replay: no change
    with app.app_context():
        assert fresh(invoice).amount_paid_cents == 1_000


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    total=st.integers(min_value=1_000, max_value=500_000),
    bp=st.sampled_from([0, 150, 200, 1000]),
    age=st.integers(min_value=0, max_value=20),
    parts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=4),
)
def test_any_sequence_of_payments_keeps_the_books_right(app, total, bp, age, parts):
    """Property: whatever a payer pays in turn (each amount a share of what is due, the last
    one the whole rest), the invoice is never over-paid, money is conserved, and a discount
    is only ever taken by the payment that clears the balance inside the window."""
    invoice, _ = factories.invoice(
        total_cents=total,
        issue_date=date.today() - timedelta(days=age),
        discount_bp=bp,
        discount_days=10,
    )
    for n, share in enumerate(parts):
        invoice = fresh(invoice)
        if invoice.balance_cents <= 0:
            break
        due = invoice.balance_cents - money.discount_available(invoice, date.today())
        last = n == len(parts) - 1
        amount = due if last else max(1, due * share // 100)
        try:
            attempt = start(app, invoice, amount, owner=f"p{n}").attempt
        except payments.PaymentError as exc:
            # Only a part payment below the minimum may be refused; never a full one.
            assert amount < due and amount < 1_000 and "smallest" in exc.message
            continue
        payment = payments.apply_event(succeeded(attempt, reference=f"ref-{attempt.key}"))
        assert payment.unapplied_cents == 0
        after = fresh(invoice)
        if after.balance_cents > 0:
            assert after.discount_taken_cents == 0
    final = fresh(invoice)
    assert final.balance_cents == 0  # the last payment is always the whole rest
    if age > 10 or not bp:
        assert final.discount_taken_cents == 0
    if final.discount_taken_cents:
        assert final.balance_cents == 0 and age <= 10
        assert final.discount_taken_cents <= money.percent_of(total, bp)
    check_invariants()


KILL_SCRIPT = """
import json, os, signal, sys
from portal import create_app
from portal.db import db
from portal.services import payments
from portal.services.providers import Event

config, event = json.loads(sys.argv[1]), json.loads(sys.argv[2])
app = create_app(config)
with app.app_context():
    db.connect(reuse_if_open=True)
    # The process dies inside the apply transaction, after the Payment row and the balance
    # update were written and before the commit.
    payments._email = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
    payments.apply_event(Event(**event))
"""


def test_process_killed_inside_the_apply_transaction(app, client):
    """I6: a process killed (SIGKILL) in the middle of applying a payment leaves the database
    intact with nothing applied; the redelivered webhook then applies it exactly once."""
    import subprocess
    import sys

    invoice, _ = factories.invoice(total_cents=10_000)
    attempt = start(app, invoice, 4_000).attempt
    keys = ["TESTING", "SECRET_KEY", "DATABASE_URL", "PAYMENT_PROVIDERS", "BASE_URL"]
    config = {k: app.config[k] for k in keys}
    config.update(INSTANCE_PATH=app.instance_path, MAIL_URL="", MAIL_SEND_ON_COMMIT=False)
    event = succeeded(attempt).__dict__
    result = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(config), json.dumps(event)],
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    db.close()
    db.connect()
    if app.config["DATABASE_URL"].startswith("sqlite"):
        assert db.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert Payment.select().count() == 0
    assert fresh(invoice).amount_paid_cents == 0
    assert PaymentAttempt.get_by_id(attempt.id).status == "redirected"
    body = webhook_body(attempt, reference=event["reference"])
    for _ in range(2):
        assert post_webhook(client, body, TC.sign_webhook(body)).status_code == 200
    assert Payment.select().count() == 1 and fresh(invoice).amount_paid_cents == 4_000
    check_invariants()


def test_payment_audit_trail(app, client, caplog):
    """I11: the attempt, its redirect, the application and a forged return are audited with
    the client address; the forged return raises a security alert in the log."""
    invoice, code = factories.invoice(total_cents=10_000)
    guest_pays(client, invoice, code, "20.00")
    actions = {a.action: a for a in AuditLog.select()}
    for action in (
        "quickpay.lookup_ok",
        "payment.attempt_started",
        "payment.attempt_redirected",
        "payment.attempt_succeeded",
        "payment.applied",
    ):
        assert action in actions, action
    assert actions["payment.attempt_started"].ip == "127.0.0.1"
    assert json.loads(actions["payment.applied"].detail)["amount_cents"] == 2_000
    caplog.set_level(logging.WARNING)
    key = PaymentAttempt.get().key
    assert client.get(f"/payments/return/test-checkout/{key}?result=forged").status_code == 400
    assert "security alert: rejected checkout return" in caplog.text
