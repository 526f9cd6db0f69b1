"""Many payers at once on one invoice, over HTTP, each with its own client and connection.

Each test names the row of docs/security-controls.md it covers (section I, payments; J6,
PostgreSQL row locks). They run on whichever database the suite runs on (SQLite by
default, PostgreSQL with PORTAL_TEST_DATABASE_URL); CI runs both.
"""

import re
import threading
import time
from collections import Counter as Tally

import pytest

from portal.db import db
from portal.models import (
    Invoice,
    OutboxMessage,
    Payment,
    PaymentApplication,
    PaymentAttempt,
    PaymentAttemptItem,
)
from portal.models import TestCheckoutSession as CheckoutSession
from portal.services import payments

from . import factories

HIDDEN = re.compile(r"<input\b[^>]*>")


def hidden_fields(html: str) -> dict:
    """The hidden inputs of the pay form, as the browser would send them back."""
    fields = {}
    for tag in HIDDEN.findall(html):
        if 'type="hidden"' not in tag:
            continue
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and name.group(1) != "amount":
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


@pytest.fixture
def papp(make_app, mailbox):
    """An app with room for 40 threads at once and no per-address burst limit (every
    payer here comes from 127.0.0.1; the limit is tested in test_rate_limits.py)."""
    app = make_app(DATABASE_MAX_CONNECTIONS=60, RATELIMIT_ENABLED=False)
    with app.app_context():
        db.connect(reuse_if_open=True)
        yield app
        if not db.is_closed():
            db.close()


def open_guest(app, invoice, code):
    """A guest browser that looked the invoice up and has the pay form in front of it."""
    client = app.test_client()
    found = client.post("/pay/", data={"number": invoice.number, "secret": code})
    assert found.status_code == 303, found.text
    page = client.get("/pay/invoice")
    assert page.status_code == 200
    return client, hidden_fields(page.text)


def run_together(count, target):
    """Run `target(i)` in `count` threads released at once; results, errors, seconds."""
    barrier = threading.Barrier(count)
    results, errors, took = [None] * count, [], [0.0] * count

    def worker(i):
        try:
            barrier.wait(timeout=30)
            began = time.monotonic()
            results[i] = target(i)
            took[i] = time.monotonic() - began
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors, took


def pay(client, fields, amount, provider):
    return client.post(
        "/pay/invoice",
        data={
            **fields,
            "amount": amount,
            "payer_name": "Pat Payer",
            "payer_email": "pat@example.com",
            "provider": provider,
        },
    )


def check_money():
    """No invoice over- or under-applied; every applied payment is applied or credit."""
    for invoice in Invoice.select():
        applied = sum(
            a.amount_cents
            for a in PaymentApplication.select().where(PaymentApplication.invoice == invoice.id)
        )
        assert applied == invoice.amount_paid_cents <= invoice.total_cents
    for payment in Payment.select().where(Payment.status == "applied"):
        applied = sum(a.amount_cents for a in payment.applications)
        assert applied + payment.unapplied_cents == payment.amount_cents


def test_i4_j6_thirty_concurrent_offline_payers_on_one_invoice(papp):
    """I4/J6 (issue 15): 30 payers record a bank transfer on one invoice at the same moment.
    On PostgreSQL this deadlocked between starting an attempt (invoice, then attempt rows)
    and recording the offline payment (attempt, then its items): 500s after long waits.
    Every payer gets an answer (no 500), each pending payment is on an attempt that says
    "offline", and once staff confirm them all the balance is exactly what was paid."""
    invoice, code = factories.invoice(total_cents=100_000)
    guests = [open_guest(papp, invoice, code) for _ in range(30)]
    responses, errors, took = run_together(
        30, lambda i: pay(guests[i][0], guests[i][1], "10.00", "offline")
    )
    assert errors == []
    codes = Tally(r.status_code for r in responses)
    assert not [c for c in codes if c >= 500], codes
    assert set(codes) <= {303, 422}, codes
    assert max(took) < 10, max(took)
    pending = list(Payment.select().where(Payment.status == "pending"))
    recorded = [r for r in responses if r.status_code == 303]
    assert len(pending) == len(recorded) == 30
    for payment in pending:
        assert payment.attempt.status == "offline"
    staff = factories.staff()
    for payment in pending:
        payments.confirm_offline(payment, staff)
    invoice = Invoice.get_by_id(invoice.id)
    assert invoice.amount_paid_cents == 30 * 1_000
    check_money()


def test_i9_offline_payment_is_never_recorded_on_a_cancelled_attempt(papp):
    """I9 (issue 15): recording an offline payment re-checks its attempt under the lock: an
    attempt another payer's checkout cancelled gets no payment, and its payer is told the
    truth instead of "Payment recorded"."""
    invoice, _ = factories.invoice(total_cents=50_000)
    with papp.test_request_context("/pay/invoice", method="POST"):
        attempt = payments._open_attempt(
            invoice.customer,
            payments.plan(
                [(invoice, 5_000)], {"partial_payments": True, "minimum_partial_cents": 0}
            ),
            "offline",
            "Pat",
            "pat@example.com",
            None,
            True,
        )
    PaymentAttempt.update(status="cancelled").where(PaymentAttempt.id == attempt.id).execute()
    Payment.delete().where(Payment.attempt == attempt.id).execute()
    with pytest.raises(payments.PaymentError) as refused:
        payments.record_offline(attempt)
    assert "not recorded" in refused.value.message
    assert not Payment.select().where(Payment.attempt == attempt.id).exists()


def test_i9_mixed_payers_never_see_recorded_on_a_cancelled_attempt(papp):
    """I9 (issue 15): 36 payers at once, half by bank transfer and half by card, on one
    invoice. A payer told "Payment recorded" has a pending payment on an attempt that says
    "offline"; no payment hangs on a cancelled attempt."""
    invoice, code = factories.invoice(total_cents=500_000)
    guests = [open_guest(papp, invoice, code) for _ in range(36)]

    def one(i):
        provider = "offline" if i % 2 else "test-checkout"
        response = pay(guests[i][0], guests[i][1], "10.00", provider)
        if response.status_code == 303 and "/payments/" in response.headers["Location"]:
            page = guests[i][0].get(response.headers["Location"])
            return provider, page.text
        return provider, response.status_code

    results, errors, _ = run_together(36, one)
    assert errors == []
    recorded = [r for r in results if r[0] == "offline" and isinstance(r[1], str)]
    for _, text in recorded:
        assert "Payment recorded" in text
    for payment in Payment.select():
        assert payment.attempt.status == "offline", payment.attempt.status
    assert Payment.select().count() == len(recorded)


def test_i2_double_click_on_a_first_payment_is_one_payment(papp, mailbox):
    """I2 (issue 15): a browser's very first payment, clicked twice at once: both requests
    carry the same form (the payer key comes from the page, not from the request), so they
    make one pending payment and one email."""
    invoice, code = factories.invoice(total_cents=50_000)
    client, fields = open_guest(papp, invoice, code)
    with client.session_transaction() as browser:
        browser.pop("payer", None)  # nothing minted before this payment: its first one
    cookie = client.get_cookie(papp.config["SESSION_COOKIE_NAME"]).value
    clicks = []
    for _ in range(2):
        click = papp.test_client()
        click.set_cookie(papp.config["SESSION_COOKIE_NAME"], cookie)
        clicks.append(click)
    responses, errors, _ = run_together(2, lambda i: pay(clicks[i], fields, "80.00", "offline"))
    assert errors == []
    assert [r.status_code for r in responses] == [303, 303]
    assert responses[0].headers["Location"] == responses[1].headers["Location"]
    assert Payment.select().count() == 1 and PaymentAttempt.select().count() == 1
    assert OutboxMessage.select().where(OutboxMessage.kind == "payment_pending").count() == 1
    mailbox.wait_for(1)
    time.sleep(0.3)
    assert len(mailbox.messages) == 1


def card_payer(client, fields):
    """Start a card payment, pay at the test checkout at once, come back; what happened."""
    started = pay(client, fields, "980.00", "test-checkout")
    if started.status_code != 303:
        return "refused", started.text
    checkout = started.headers["Location"]
    back = client.post(checkout, data={"outcome": "pay"})
    assert back.status_code == 303
    status = client.get(back.headers["Location"])
    assert status.status_code == 303
    return "returned", client.get(status.headers["Location"]).text


def test_i3_i4_forty_card_payers_on_four_invoices(papp):
    """I3/I4 (issue 15): 40 card payers at once on four $980 invoices, each paying in full
    at the test checkout as soon as they get there. An attempt whose payer is at the
    provider is withdrawn only once the provider confirms it was not paid, so: nobody is
    charged for an invoice someone else is paying (one charge per invoice, no credit to
    refund), every charge is applied, no invoice is over-applied, and every invoice is paid
    by someone."""
    invoices = [factories.invoice(total_cents=98_000) for _ in range(4)]
    guests = [open_guest(papp, *invoices[i % 4]) for i in range(40)]
    results, errors, _ = run_together(40, lambda i: card_payer(*guests[i]))
    assert errors == []
    for outcome, text in results:
        assert outcome in ("returned", "refused")
        if outcome == "refused":
            assert "in progress" in text or "nothing left to pay" in text, text
    charged = CheckoutSession.select().where(CheckoutSession.status == "paid")
    by_invoice = Tally()
    for session in charged:
        attempt = PaymentAttempt.get(PaymentAttempt.key == session.attempt_key)
        payment = Payment.get(Payment.attempt == attempt.id)
        assert payment.status == "applied"
        applied = sum(a.amount_cents for a in payment.applications)
        assert applied + payment.unapplied_cents == payment.amount_cents == 98_000
        assert payment.unapplied_cents == 0
        by_invoice[attempt.items[0].invoice_id] += 1
    assert by_invoice == {invoice.id: 1 for invoice, _ in invoices}
    for invoice, _ in invoices:
        assert Invoice.get_by_id(invoice.id).balance_cents == 0
    open_items = PaymentAttemptItem.select().where(PaymentAttemptItem.is_open.is_null(False))
    assert open_items.count() == 0
    check_money()


def test_i4_a_charge_for_a_withdrawn_attempt_is_applied_or_credit(papp):
    """I4 (issue 15): money the provider took for an attempt that was cancelled anyway (a
    newer payer's checkout, the worker's expiry) is never lost: it is applied, or kept as
    credit when the invoice was paid meanwhile."""
    from portal.services.providers import Event

    invoice, code = factories.invoice(total_cents=20_000)
    first, first_fields = open_guest(papp, invoice, code)
    second, second_fields = open_guest(papp, invoice, code)
    one = pay(first, first_fields, "200.00", "test-checkout")
    assert one.status_code == 303
    attempt = PaymentAttempt.get()
    # The first payer's session is withdrawn at the provider by the second payer's start.
    two = pay(second, second_fields, "200.00", "test-checkout")
    assert two.status_code == 303
    assert PaymentAttempt.get_by_id(attempt.id).status == "cancelled"
    later = PaymentAttempt.select().where(PaymentAttempt.id != attempt.id).get()
    for paid, ref in ((later, "tcp_b"), (attempt, "tcp_a")):
        payments.apply_event(
            Event("test-checkout", paid.key, "succeeded", ref, 20_000, "USD", "evt_" + ref)
        )
    late = Payment.get(Payment.provider_reference == "tcp_a")
    assert late.status == "applied" and late.unapplied_cents == 20_000 and late.flagged
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    check_money()
