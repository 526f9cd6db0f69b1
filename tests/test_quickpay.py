"""Guest quick pay: the lookup, its throttles, the capability, the pay form and pay links.

Each test names the row of docs/security-controls.md section A that it covers.
"""

import logging
import re
from datetime import timedelta

import pytest
import time_machine

from portal import create_app
from portal.db import utcnow
from portal.models import (
    AuditLog,
    AuthThrottle,
    Invoice,
    InvoiceLine,
    OutboxMessage,
    PaymentAttempt,
)
from portal.security import CODE_ALPHABET, format_code, hash_code, new_quick_pay_code
from portal.services import quickpay, settings
from portal.views.quickpay import GENERIC_FAILURE

from . import factories
from .conftest import RequestClient

PAY = "/pay/invoice"


def lookup(client, number, code, ip="10.0.0.1"):
    """POST the quick-pay lookup from a given client address."""
    return client.post(
        "/pay/", data={"number": number, "secret": code}, environ_base={"REMOTE_ADDR": ip}
    )


def pay(client, amount, provider="test-checkout", ip="10.0.0.1", **extra):
    data = {
        "amount": amount,
        "payer_name": "Pat Payer",
        "payer_email": "pat@example.com",
        "provider": provider,
    }
    data.update(extra)
    return client.post(PAY, data=data, environ_base={"REMOTE_ADDR": ip})


def normalised(response, *typed):
    """The body with the per-session CSRF token and the typed values blanked out."""
    body = response.get_data(as_text=True)
    body = re.sub(r'"X-CSRFToken": "[^"]*"', '"X-CSRFToken": ""', body)
    body = re.sub(r'name="csrf_token" (type="hidden" )?value="[^"]*"', 'name="csrf_token"', body)
    for value in typed:
        body = body.replace(value, "TYPED")
    return body


# --- A1, A2, A3 -------------------------------------------------------------------------


def test_lookup_success_grants_the_invoice(client):
    """A1: the right number and code (any case, dashes, spaces) open the pay page."""
    invoice, code = factories.invoice(total_cents=12_345)
    typed = " " + format_code(code).lower() + " "
    response = lookup(client, invoice.number.lower(), typed)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(PAY)
    page = client.get(PAY)
    assert page.status_code == 200
    assert invoice.number in page.text
    assert "$123.45" in page.text


def test_every_failure_gets_one_generic_answer(client):
    """A1: unknown invoice, wrong code, voided invoice with a wrong code, portal-disabled
    customer with the right code, and an account number while that path is off all answer
    the same status, body and headers."""
    invoice, code = factories.invoice()
    voided, _ = factories.invoice(status="void")
    disabled, disabled_code = factories.invoice(factories.customer(portal_enabled=False))
    cases = [
        ("INV-NOPE-1", code),
        (invoice.number, new_quick_pay_code()),
        (voided.number, new_quick_pay_code()),
        (disabled.number, disabled_code),
        (invoice.number, invoice.customer.account_number),
    ]
    answers = []
    for number, secret in cases:
        response = lookup(app_client(client), number, secret)  # each a new visitor
        answers.append(
            (
                response.status_code,
                normalised(response, number),
                sorted(k for k, _ in response.headers if k != "Content-Length"),
            )
        )
        assert secret not in response.text  # a code is never echoed back
    assert answers[0][0] == 422
    assert GENERIC_FAILURE in answers[0][1]
    assert all(a == answers[0] for a in answers), "responses differ"
    assert client.get(PAY).status_code == 302  # nothing was granted


def test_voided_and_paid_invoices_say_so_after_a_real_match(client):
    """A1/issue: with the right code, a voided or fully paid invoice says so and offers no form."""
    voided, vcode = factories.invoice(status="void")
    paid, pcode = factories.invoice(total_cents=5000, paid_cents=5000)
    assert lookup(client, voided.number, vcode).status_code == 303
    page = client.get(PAY).text
    assert "cancelled (voided)" in page and 'id="pay-form"' not in page
    assert lookup(client, paid.number, pcode).status_code == 303
    page = client.get(PAY).text
    assert "Paid in full" in page and 'id="pay-form"' not in page


def test_unknown_invoice_still_does_the_argon2_work(client, monkeypatch):
    """A2: an unknown invoice number is checked against a dummy argon2id hash, not skipped."""
    import portal.security as security

    calls = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner
            self.time_cost = inner.time_cost
            self.memory_cost = inner.memory_cost
            self.parallelism = inner.parallelism

        def hash(self, secret):
            return self.inner.hash(secret)

        def verify(self, stored, secret):
            calls.append(stored)
            return self.inner.verify(stored, secret)

    monkeypatch.setattr(security, "CODE_HASHER", Spy(security.CODE_HASHER))
    invoice, _ = factories.invoice(quick_pay_hash=hash_code("0123456789AB"))
    lookup(client, "INV-DOES-NOT-EXIST", "ABCD-EFGH-JKMN")
    lookup(client, invoice.number, "ABCD-EFGH-JKMN")
    assert len(calls) == 2
    assert all(c.startswith("$argon2id$") for c in calls)
    assert calls[0] != invoice.quick_pay_hash  # the dummy, same parameters
    assert calls[0].split("$")[3] == calls[1].split("$")[3]  # m=,t=,p= identical


def test_codes_are_random_long_and_stored_hashed(app):
    """A3: codes come from `secrets` (60 bits), are unique, and only an argon2id hash is stored."""
    codes = {new_quick_pay_code() for _ in range(5_000)}
    assert len(codes) == 5_000
    assert all(len(c) == 12 and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert len(CODE_ALPHABET) ** 12 >= 2**50
    invoice, code = factories.invoice()
    row = Invoice.get_by_id(invoice.id)
    assert row.quick_pay_hash.startswith("$argon2id$")
    assert code not in row.quick_pay_hash and code not in row.quick_pay_sealed
    import inspect

    import portal.security as security

    source = inspect.getsource(security.new_quick_pay_code)
    assert "secrets.choice" in source and "random." not in inspect.getsource(security)


def test_regenerated_code_is_stored_hashed_and_old_code_dies(client):
    """A3: a regenerated code replaces the hash; the old code no longer opens the invoice."""
    invoice, old = factories.invoice()
    staff = factories.staff()
    new = quickpay.regenerate_code(invoice, staff)
    row = Invoice.get_by_id(invoice.id)
    assert row.quick_pay_hash.startswith("$argon2id$") and new not in row.quick_pay_hash
    assert lookup(client, invoice.number, old).status_code == 422
    assert lookup(client, invoice.number, new).status_code == 303


# --- A4, A5 -----------------------------------------------------------------------------


def test_per_invoice_lock_holds_across_app_instances(make_app, mailbox):
    """A4: 5 failures for one invoice number from 5 addresses on one app lock it for every
    app on the same database (another worker, or after a restart): even the right code gets
    429 with "try again after", and the lock ends after 15 minutes."""
    first = make_app()
    with first.app_context():
        invoice, code = factories.invoice()
    client = first.test_client()
    for n in range(5):
        response = lookup(client, invoice.number, new_quick_pay_code(), ip=f"10.1.0.{n}")
        assert response.status_code == (422 if n < 4 else 429)
    second = same_database_app(first)  # a second worker, or the same one restarted
    other = second.test_client()
    response = lookup(other, invoice.number, code, ip="10.2.0.9")
    assert response.status_code == 429
    assert "try again after" in response.text
    assert invoice.number not in response.text.replace(f'value="{invoice.number}"', "")
    assert other.get(PAY).status_code == 302
    # An unknown number locks the same way, so a 429 reveals nothing about existence.
    for n in range(5):
        last = lookup(other, "INV-GHOST", "ABCD", ip=f"10.3.0.{n}")
    assert last.status_code == 429
    with time_machine.travel(utcnow() + timedelta(minutes=16)):
        assert lookup(other, invoice.number, code, ip="10.4.0.1").status_code == 303


def same_database_app(app):
    """Another app instance (worker) on the same database, as after a restart."""
    keys = ["TESTING", "SECRET_KEY", "WTF_CSRF_ENABLED", "ARGON2_TIME_COST"]
    keys += ["ARGON2_MEMORY_COST", "MAIL_URL", "MAIL_SEND_ON_COMMIT", "PAYMENT_PROVIDERS"]
    keys += ["BASE_URL", "DATABASE_URL"]
    config = {k: app.config[k] for k in keys}
    config["INSTANCE_PATH"] = app.instance_path
    other = create_app(config)
    other.test_client_class = RequestClient
    return other


def test_success_clears_the_invoice_failures(client):
    """A4: a success resets the per-invoice counter, so earlier typos do not add up to a lock."""
    invoice, code = factories.invoice()
    for _ in range(4):
        lookup(client, invoice.number, "WRONG")
    assert lookup(client, invoice.number, code).status_code == 303
    for _ in range(4):
        assert lookup(client, invoice.number, "WRONG").status_code == 422


def test_per_address_throttle_stops_spraying(client, caplog):
    """A5: one address trying many invoice numbers is locked after 20 failures (429), an alert
    is logged and audited, and another address is not affected."""
    invoice, code = factories.invoice()
    caplog.set_level(logging.WARNING)
    statuses = [
        lookup(client, f"INV-SPRAY-{n}", "ABCD", ip="10.9.9.9").status_code for n in range(21)
    ]
    assert statuses[:19] == [422] * 19
    assert statuses[19:] == [429, 429]
    assert lookup(client, invoice.number, code, ip="10.9.9.9").status_code == 429
    assert "security alert" in caplog.text
    assert AuditLog.select().where(AuditLog.action == "security.alert").exists()
    assert lookup(client, invoice.number, code, ip="10.8.8.8").status_code == 303


# --- A6 ---------------------------------------------------------------------------------


def test_pay_link_works_while_lookup_is_locked_and_dies_with_a_new_code(client):
    """A6: the signed pay link opens the pay page while typed lookups for the invoice are
    locked; regenerating the quick-pay code revokes it (and the capability it granted)."""
    invoice, code = factories.invoice()
    for n in range(5):
        lookup(client, invoice.number, "WRONG", ip=f"10.5.0.{n}")
    assert lookup(client, invoice.number, code).status_code == 429
    path = link_path(client, invoice)
    response = client.get(path)
    assert response.status_code == 302 and response.headers["Location"].endswith(PAY)
    assert invoice.number in client.get(PAY).text
    quickpay.regenerate_code(invoice, factories.staff())
    assert client.get(PAY).status_code == 302  # the capability died with the code
    fresh = app_client(client)
    dead = fresh.get(path)
    assert dead.status_code == 404
    assert "no longer valid" in dead.text
    assert fresh.get(PAY).status_code == 302


def link_path(client, invoice):
    """The path of an invoice's signed pay link."""
    with client.application.test_request_context():
        return quickpay.pay_link(invoice).removeprefix("http://localhost")


def app_client(client):
    return client.application.test_client()


def test_tampered_pay_link_is_refused(client):
    """A6/A8: a pay link for one invoice cannot be edited into a link for another."""
    first, _ = factories.invoice()
    second, _ = factories.invoice()
    token = link_path(client, first).rsplit("/", 1)[1]
    body, sig = token.rsplit(".", 1)
    forged = body + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    assert client.get(f"/pay/link/{forged}").status_code == 404
    assert client.get("/pay/link/not-a-token").status_code == 404
    assert client.get(PAY).status_code == 302
    assert second.number not in client.get("/pay/link/" + forged).text


# --- A7 ---------------------------------------------------------------------------------


def test_lookup_is_post_only_and_code_stays_out_of_urls_and_logs(client, caplog):
    """A7: a GET with the number and code in the query does no lookup; the form posts; the
    code never appears in a redirect, a log line or the audit log."""
    invoice, code = factories.invoice()
    caplog.set_level(logging.DEBUG)
    response = client.get(f"/pay/?number={invoice.number}&secret={code}")
    assert response.status_code == 200
    assert client.get(PAY).status_code == 302
    assert 'method="post"' in response.text and 'id="lookup-form"' in response.text
    assert client.put("/pay/", data={"number": invoice.number, "secret": code}).status_code == 405
    lookup(client, invoice.number, "WRONG-CODE-1")
    ok = lookup(client, invoice.number, code)
    assert code not in ok.headers["Location"]
    assert code not in caplog.text and "WRONG-CODE-1" not in caplog.text
    for row in AuditLog.select():
        assert code not in row.detail and "WRONG-CODE-1" not in row.detail
    for row in AuthThrottle.select():
        assert invoice.number not in row.key_hash


# --- A8 ---------------------------------------------------------------------------------


def test_capability_is_for_one_invoice_and_expires(client):
    """A8: the capability covers the looked-up invoice only, another payer's status page
    answers 404, and after 15 minutes the pay page sends the guest back to the lookup."""
    first, code = factories.invoice(total_cents=40_000)
    second, _ = factories.invoice(total_cents=70_000)
    lookup(client, first.number, code)
    page = client.get(PAY).text
    assert first.number in page and second.number not in page
    # A failed lookup of another invoice grants nothing and keeps the first.
    lookup(client, second.number, "WRONG")
    assert first.number in client.get(PAY).text
    # Pay attempts bind the granted invoice only, whatever the form says.
    response = pay(client, "50.00", invoice=second.id, number=second.number)
    assert response.status_code == 303
    attempt = PaymentAttempt.get()
    assert [i.invoice_id for i in attempt.items] == [first.id]
    stranger = app_client(client)
    assert stranger.get(f"/payments/{attempt.key}").status_code == 404
    assert stranger.get(PAY).status_code == 302
    with time_machine.travel(utcnow() + timedelta(minutes=14)):
        assert client.get(PAY).status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=16)):
        expired = client.get(PAY)
        assert expired.status_code == 302 and expired.headers["Location"].endswith("/pay/")
        assert pay(client, "50.00").headers["Location"].endswith("/pay/")
    assert PaymentAttempt.select().count() == 1


def test_done_forgets_the_invoice(client):
    """A8: "Done" ends the guest's access in this browser (a shared computer)."""
    invoice, code = factories.invoice()
    lookup(client, invoice.number, code)
    assert client.post("/pay/done").status_code == 303
    assert client.get(PAY).status_code == 302


# --- A9 ---------------------------------------------------------------------------------


def test_pay_page_shows_only_what_is_needed(client):
    """A9: number, dates, amounts and a masked name; never the address, contacts, lines or
    other invoices of the customer."""
    customer = factories.customer(
        name="Acme Manufacturing",
        email="ap-secret@acme.test",
        phone="+1 555 0100",
        address="12 Hidden Lane, Springfield",
    )
    factories.portal_user(customer, email="buyer@acme.test")
    invoice, code = factories.invoice(customer, total_cents=125_000, paid_cents=25_000)
    other, _ = factories.invoice(customer)
    InvoiceLine.create(invoice=invoice, description="Secret widget line", amount_cents=125_000)
    lookup(client, invoice.number, code)
    page = client.get(PAY).text
    for shown in (invoice.number, "$1,250.00", "$250.00", "$1,000.00", "A… M… (account ending"):
        assert shown in page
    for hidden in (
        "Acme Manufacturing",
        "ap-secret@acme.test",
        "buyer@acme.test",
        "555 0100",
        "Hidden Lane",
        "Secret widget",
        other.number,
        customer.account_number,
        code,
    ):
        assert hidden not in page


def test_overdue_invoice_is_flagged(client):
    """A9/issue: an invoice past its due date shows as overdue."""
    from datetime import date

    invoice, code = factories.invoice(issue_date=date.today() - timedelta(days=60))
    lookup(client, invoice.number, code)
    page = client.get(PAY).text
    assert "Overdue" in page and "(overdue)" in page


# --- A10 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount, message",
    [
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("-1", "Enter an amount like"),
        ("0.001", "Enter an amount like"),
        ("NaN", "Enter an amount like"),
        ("1e3", "Enter an amount like"),
        ("ten dollars", "Enter an amount like"),
        ("", "Enter an amount like"),
        ("1000000000000", "The most you can pay"),
        ("100000000000000", "too large"),
        ("1000.01", "The most you can pay"),
        ("9.99", "smallest partial payment is $10.00"),
    ],
)
def test_bad_amounts_are_refused_next_to_the_field(client, amount, message):
    """A10: zero, negative, sub-cent, non-numbers, over the balance and below the partial
    minimum answer 422 with the message next to the amount field, keep what was typed, and
    write no payment attempt."""
    invoice, code = factories.invoice(total_cents=100_000)
    lookup(client, invoice.number, code)
    response = pay(client, amount, payer_name="Typed Name", currency="XXX")
    assert response.status_code == 422
    page = response.text
    error = re.search(r'<p class="error" id="amount-error">([^<]*)</p>', page)
    assert error and message in error.group(1).replace("&#39;", "'"), page
    assert f'value="{amount}"' in page or amount == ""
    assert 'value="Typed Name"' in page and 'value="pat@example.com"' in page
    assert PaymentAttempt.select().count() == 0


def test_partial_payments_switched_off(client):
    """A10: with partial payments off, only the whole balance is paid, whatever is posted
    (issue 13, finding 6: the amount is not the payer's to choose)."""
    settings.save({"partial_payments": False})
    invoice, code = factories.invoice(total_cents=30_000)
    lookup(client, invoice.number, code)
    assert pay(client, "100.00").status_code == 303
    assert PaymentAttempt.get().amount_cents == 30_000


def test_other_pay_form_errors(client):
    """A10: missing name, bad email, unknown or disabled provider, unaccepted terms: 422,
    each message next to its field, no attempt."""
    settings.save(
        {"payment_terms": "Payments are final.", "require_payment_terms_acceptance": True}
    )
    invoice, code = factories.invoice()
    lookup(client, invoice.number, code)
    response = pay(client, "50.00", payer_name="", payer_email="not-an-email", provider="stripe")
    assert response.status_code == 422
    assert "Enter your name for the receipt." in response.text
    assert "Enter a valid email address." in response.text
    assert "Not a valid choice" in response.text
    response = pay(client, "50.00")
    assert response.status_code == 422
    assert "Accept the payment terms to continue." in response.text
    assert PaymentAttempt.select().count() == 0
    assert pay(client, "50.00", accept_terms="y").status_code == 303


def test_htmx_pay_error_is_the_form_fragment(client, hx):
    """A10: an htmx submit gets only the re-rendered form block with the 422."""
    invoice, code = factories.invoice()
    lookup(client, invoice.number, code)
    response = client.post(PAY, data={"amount": "-5"}, headers=hx)
    assert response.status_code == 422
    assert response.text.lstrip().startswith("<form") and "<html" not in response.text


# --- A11 --------------------------------------------------------------------------------


def test_account_number_path_switched_on_and_its_stricter_throttle(client):
    """A11: off by default (see the generic-answer test); when switched on, the account
    number opens the invoice, the label says so, and 3 failures lock the number (not 5)."""
    settings.save({"quick_pay_account_number": True})
    invoice, _ = factories.invoice()
    assert "Quick-pay code or account number" in client.get("/pay/").text
    response = lookup(client, invoice.number, invoice.customer.account_number.lower())
    assert response.status_code == 303
    assert invoice.number in client.get(PAY).text
    target, code = factories.invoice()
    statuses = [
        lookup(client, target.number, "C99999", ip=f"10.6.0.{n}").status_code for n in range(3)
    ]
    assert statuses == [422, 422, 429]
    assert lookup(client, target.number, code, ip="10.6.1.1").status_code == 429


def test_account_number_path_off_by_default(client):
    """A11: with the switch off, the label asks only for the code and 4 failures do not lock."""
    invoice, code = factories.invoice()
    page = client.get("/pay/").text
    assert "Quick-pay code or account number" not in page
    for n in range(4):
        assert (
            lookup(
                client, invoice.number, invoice.customer.account_number, ip=f"10.7.0.{n}"
            ).status_code
            == 422
        )
    assert lookup(client, invoice.number, code).status_code == 303


# --- A12 --------------------------------------------------------------------------------


def test_csrf_is_required_on_every_guest_post(make_app, mailbox):
    """A12: lookup, pay, pay-link request and "done" refuse a POST without the CSRF token."""
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        invoice, code = factories.invoice()
    client = app.test_client()
    for path, data in [
        ("/pay/", {"number": invoice.number, "secret": code}),
        ("/pay/link", {"number": invoice.number}),
        ("/pay/invoice", {"amount": "10.00"}),
        ("/pay/done", {}),
    ]:
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "Reload the page" in response.text
    page = client.get("/pay/").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        "/pay/", data={"number": invoice.number, "secret": code, "csrf_token": token}
    )
    assert response.status_code == 303
    with app.app_context():
        assert not OutboxMessage.select().exists()


# --- "Email me a pay link" --------------------------------------------------------------


def test_pay_link_goes_only_to_the_billing_address(client, mailbox):
    """The pay link is emailed to the invoice's billing address on file, never to a typed
    address; the answer is the same for unknown invoices; the link in the email works."""
    customer = factories.customer(email="billing@acme.test")
    invoice, _ = factories.invoice(customer)
    known = client.post(
        "/pay/link",
        data={"number": invoice.number, "email": "attacker@evil.test", "to": "attacker@evil.test"},
    )
    unknown = client.post("/pay/link", data={"number": "INV-NOT-THERE"})
    assert known.status_code == unknown.status_code == 200
    assert normalised(known) == normalised(unknown)
    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    message = messages[0]
    assert message["To"] == "billing@acme.test"
    assert invoice.number in message["Subject"]
    body = message.get_content()
    assert "attacker" not in body
    link = re.search(r"http://localhost(/pay/link/\S+)", body).group(1)
    fresh = client.application.test_client()
    assert fresh.get(link).status_code == 302
    assert invoice.number in fresh.get(PAY).text


def test_pay_link_requests_are_throttled(client, mailbox):
    """Pay-link emails: at most 3 per invoice number per hour, and the answer never changes."""
    invoice, _ = factories.invoice()
    answers = {
        client.post(
            "/pay/link",
            data={"number": invoice.number},
            environ_base={"REMOTE_ADDR": f"10.0.1.{n}"},
        ).status_code
        for n in range(5)
    }
    assert answers == {200}
    assert OutboxMessage.select().where(OutboxMessage.kind == "pay_link").count() == 3
    assert len(mailbox.wait_for(3)) == 3


def test_pay_link_form_errors(client):
    """The pay-link form needs an invoice number (422, message next to the field)."""
    response = client.post("/pay/link", data={"number": ""})
    assert response.status_code == 422
    assert "Enter the invoice number." in response.text


def test_quick_pay_can_be_switched_off(client):
    """With quick pay disabled in settings every quick-pay URL answers 404."""
    settings.save({"quick_pay_enabled": False})
    assert client.get("/pay/").status_code == 404
    assert client.post("/pay/", data={"number": "X", "secret": "Y"}).status_code == 404


def test_htmx_pay_success_leaves_with_a_full_page_load(client, hx):
    """A10/I2: a valid htmx submit answers 204 + HX-Redirect to the provider's page, so the
    browser leaves for the hosted checkout with a real navigation (never inside a fragment)."""
    invoice, code = factories.invoice()
    lookup(client, invoice.number, code)
    response = client.post(
        PAY,
        data={
            "amount": "25.00",
            "payer_name": "Pat",
            "payer_email": "pat@example.com",
            "provider": "test-checkout",
        },
        headers=hx,
    )
    assert response.status_code == 204
    assert "/test-checkout/tcs_" in response.headers["HX-Redirect"]


def test_daily_cap_per_invoice_number(client):
    """A4: slow guessing (5 tries, wait out the lock, again) stops at 20 failures a day."""
    invoice, code = factories.invoice()
    start = utcnow()
    for round_ in range(4):
        with time_machine.travel(start + timedelta(minutes=16 * round_), tick=False):
            for n in range(5):
                lookup(client, invoice.number, "WRONG", ip=f"10.{round_}.2.{n}")
    with time_machine.travel(start + timedelta(minutes=16 * 5), tick=False):
        assert lookup(client, invoice.number, code, ip="10.99.0.1").status_code == 429
    with time_machine.travel(start + timedelta(days=1, minutes=1), tick=False):
        assert lookup(client, invoice.number, code, ip="10.99.0.2").status_code == 303


def test_spraying_from_many_addresses_raises_a_global_alert(client, caplog, monkeypatch):
    """A5: failures spread over many addresses and invoice numbers trip no lock, but pass
    the global baseline, which logs and audits an alert."""
    monkeypatch.setattr(quickpay, "GLOBAL_ALERT_FAILURES", 6)
    caplog.set_level(logging.WARNING)
    for n in range(6):
        assert lookup(client, f"INV-SPREAD-{n}", "ABCD", ip=f"10.20.0.{n}").status_code == 422
    assert "quick-pay lookup failures in" in caplog.text
    alert = AuditLog.get(AuditLog.action == "security.alert")
    assert "above baseline" in alert.detail
