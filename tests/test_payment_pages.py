"""The customer's payment pages after the penetration test (issue 16, findings 7 and 10).

Each test names the row of docs/security-controls.md it covers.
"""

import re
import warnings

from portal.models import Payment, PaymentAttempt
from portal.services import payments
from portal.services.providers import Event

from . import factories
from .conftest import login
from .test_quickpay import normalised


def split_payment(customer, first, second):
    """A payment over two invoices, started by a whole-account login, applied."""
    payer = factories.portal_user(customer)
    from flask import current_app

    with current_app.test_request_context("/invoices/pay", method="POST"):
        checkout = payments.checkout(
            customer,
            [(first, first.total_cents), (second, second.total_cents)],
            "test-checkout",
            "Pat Whole",
            "whole@example.com",
            portal_user=payer,
        )
    attempt = checkout.attempt
    payments.apply_event(
        Event(
            "test-checkout",
            attempt.key,
            "succeeded",
            "tcp_split",
            attempt.amount_cents,
            "USD",
            "evt_split",
        )
    )
    return attempt


def test_e2_status_page_keeps_to_the_logins_sites_and_role(app, client):
    """E2 (issue 16 finding 7): `/payments/<attempt>` for a login of the same company: an
    attempt of another site answers 404, a login without the invoices role answers 404,
    and a split receipt shows a site-limited login only its sites' lines and their sum."""
    customer = factories.customer()
    north, south = factories.site(customer), factories.site(customer)
    mine, _ = factories.invoice(customer, total_cents=12_345, site=north)
    theirs, _ = factories.invoice(customer, total_cents=98_765, site=south)
    other_site_only, _ = factories.invoice(customer, total_cents=5_000, site=south)
    split = split_payment(customer, mine, theirs)
    with app.test_request_context("/invoices/pay", method="POST"):
        alone = payments.checkout(
            customer, [(other_site_only, 5_000)], "offline", "Sam", "sam@example.com"
        ).attempt
    limited = factories.portal_user(customer, email="north@example.com", sites=[north])
    login(client, limited.email)
    assert client.get(f"/payments/{alone.key}").status_code == 404
    page = client.get(f"/payments/{split.key}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert mine.number in html and theirs.number not in html
    assert "$123.45" in html
    assert "$1,111.10" not in html and "$987.65" not in html
    client.post("/logout")
    whole = factories.portal_user(customer, email="whole2@example.com")
    login(client, whole.email)
    html = client.get(f"/payments/{split.key}").get_data(as_text=True)
    assert "$1,111.10" in html and theirs.number in html
    assert client.get(f"/payments/{alone.key}").status_code == 200
    client.post("/logout")
    no_invoices = factories.portal_user(customer, email="cases@example.com", roles="cases")
    login(client, no_invoices.email)
    assert client.get(f"/payments/{split.key}").status_code == 404
    assert Payment.select().count() == 2 and PaymentAttempt.select().count() == 2


def guest_with_invoice(client, invoice, code):
    assert client.post("/pay/", data={"number": invoice.number, "secret": code}).status_code == 303
    assert client.get("/pay/invoice").status_code == 200


def test_a8_done_ends_a_copied_capability_at_once(app, client):
    """A8 (issue 16 finding 10): "Done — close this invoice" ends the quick-pay capability on
    the server: a copy of the session cookie taken before it stops working at once."""
    invoice, code = factories.invoice()
    guest_with_invoice(client, invoice, code)
    name = app.config["SESSION_COOKIE_NAME"]
    copy = app.test_client()
    copy.set_cookie(name, client.get_cookie(name).value)
    assert copy.get("/pay/invoice").status_code == 200
    assert client.post("/pay/done").status_code in (302, 303)
    assert client.get("/pay/invoice").status_code == 302
    assert copy.get("/pay/invoice").status_code == 302
    page = copy.post(
        "/pay/invoice",
        data={"amount": "10.00", "payer_name": "P", "payer_email": "p@example.com"},
    )
    assert page.status_code in (302, 303) and "/pay/" in page.headers["Location"]
    assert PaymentAttempt.select().count() == 0


def test_a10_another_currencys_symbol_is_refused_next_to_the_amount(app, client):
    """A10 (issue 16 finding 10): `€10` on a USD invoice was read as $10.00. A symbol of
    another currency is refused with a message beside the amount; the invoice's own symbol
    is fine. The same on the signed-in invoice list."""
    invoice, code = factories.invoice(total_cents=50_000)
    guest_with_invoice(client, invoice, code)
    data = {"payer_name": "Pat", "payer_email": "pat@example.com", "provider": "offline"}
    refused = client.post("/pay/invoice", data={**data, "amount": "€10.00"})
    assert refused.status_code == 422
    error = re.search(r'<p class="error" id="amount-error">([^<]*)</p>', refused.text)
    assert error and "US dollars" in error.group(1), refused.text
    assert Payment.select().count() == 0
    accepted = client.post("/pay/invoice", data={**data, "amount": "$10.00"})
    assert accepted.status_code == 303
    assert Payment.get().amount_cents == 1_000
    user = factories.portal_user(invoice.customer, email="list@example.com")
    member = app.test_client()
    login(member, user.email)
    review = member.post(
        "/invoices/review",
        data={"invoice": invoice.public_id, f"amount-{invoice.public_id}": "£20"},
    )
    assert review.status_code == 422
    assert "This invoice is in US dollars" in review.text


def test_b3_pay_link_emails_are_limited_per_recipient(app, client, mailbox):
    """B3 (issue 16 finding 10): pay-link emails were limited per invoice only, so asking
    for each of a customer's invoices in turn flooded one mailbox. At most 3 an hour go to
    one recipient, whatever the invoice; the answer never changes."""
    from portal.models import OutboxMessage

    customer = factories.customer(email="billing@flood.test")
    invoices = [factories.invoice(customer)[0] for _ in range(6)]
    answers = set()
    for n, invoice in enumerate(invoices):
        answer = client.post(
            "/pay/link",
            data={"number": invoice.number},
            environ_base={"REMOTE_ADDR": f"10.0.2.{n}"},
        )
        answers.add((answer.status_code, normalised(answer)))
    assert len(answers) == 1
    assert OutboxMessage.select().where(OutboxMessage.kind == "pay_link").count() == 3


def test_a6_pay_links_live_seven_days(app, client):
    """A6 (issue 16 finding 2): pay links lived 60 days; now 7 (SECURITY.md)."""
    import time_machine

    from portal.db import utcnow
    from portal.services import quickpay

    invoice, _ = factories.invoice()
    with app.test_request_context():
        path = quickpay.pay_link(invoice).removeprefix("http://localhost")
    from datetime import timedelta

    with time_machine.travel(utcnow() + timedelta(days=6, hours=23)):
        assert app.test_client().get(path).status_code == 302
    with time_machine.travel(utcnow() + timedelta(days=7, hours=1)):
        assert app.test_client().get(path).status_code == 404


def test_e3_pay_forms_carry_public_invoice_ids(app, client):
    """E3 (issue 16 finding 10): the invoice list's checkboxes and amount fields and the
    review's lines name invoices by their public ids, never the sequential ones; the
    review's lines pay as before."""
    customer = factories.customer()
    first, _ = factories.invoice(customer, total_cents=10_000)
    second, _ = factories.invoice(customer, total_cents=20_000)
    user = factories.portal_user(customer)
    login(client, user.email)
    listing = client.get("/invoices/").text
    for invoice in (first, second):
        assert f'name="invoice" value="{invoice.public_id}"' in listing
        assert f'name="amount-{invoice.public_id}"' in listing
        assert f'value="{invoice.id}"' not in listing
        assert f'name="amount-{invoice.id}"' not in listing
    review = client.post(
        "/invoices/review",
        data={
            "invoice": [first.public_id, second.public_id],
            f"amount-{second.public_id}": "150.00",
        },
    )
    assert review.status_code == 200
    lines = re.findall(r'name="line" value="([^"]*)"', review.text)
    assert sorted(lines) == sorted([f"{first.public_id}:10000", f"{second.public_id}:15000"])
    key = re.search(r'name="page_key" type="hidden" value="([^"]*)"', review.text)
    paid = client.post(
        "/invoices/pay",
        data={
            "line": lines,
            "payer_name": "Pat",
            "payer_email": "pat@example.com",
            "provider": "offline",
            "page_key": key.group(1) if key else "",
        },
    )
    assert paid.status_code == 303, paid.text
    assert Payment.get().amount_cents == 25_000


def test_k6_pay_forms_use_current_wtforms_choices(app, client, monkeypatch):
    """K6 (issue 15): the pay forms give WTForms their choices in its current form
    (SelectChoice): tuple choices are deprecated and go in WTForms 3.4. With tuples refused
    as 3.4 will, both pay pages still render and no "choices" DeprecationWarning is raised."""
    from wtforms.fields.choices import SelectChoice

    original = SelectChoice.from_input.__func__

    def strict(cls, input, optgroup=None):
        if isinstance(input, tuple):
            raise TypeError("tuple choices were removed in WTForms 3.4")
        return original(cls, input, optgroup)

    monkeypatch.setattr(SelectChoice, "from_input", classmethod(strict))
    invoice, code = factories.invoice()
    user = factories.portal_user(invoice.customer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guest_with_invoice(client, invoice, code)
        assert client.post("/pay/invoice", data={"amount": "1.00"}).status_code == 422
        member = app.test_client()
        login(member, user.email)
        review = member.post("/invoices/review", data={"invoice": invoice.public_id})
        assert review.status_code == 200 and 'value="offline"' in review.text
    about_choices = [w for w in caught if "choices" in str(w.message)]
    assert about_choices == [], [str(w.message) for w in about_choices]
