"""The customer's payment pages after the penetration test (issue 16, findings 7 and 10).

Each test names the row of docs/security-controls.md it covers.
"""

import re
import time
import warnings

from portal.models import Payment, PaymentAttempt
from portal.services import payments
from portal.services.providers import Event

from . import factories
from .conftest import login


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
