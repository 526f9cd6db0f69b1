"""Wording and papercuts (issue 19): codes shown as people read them, one `label` filter."""

import re

from portal.db import write_txn
from portal.filters import label
from portal.services import audit

from . import factories
from .conftest import staff_login
from .test_staff_payments import applied_payment, offline_payment


def test_label_reads_providers_and_statuses():
    assert label("offline") == "Bank transfer or cheque"
    assert label("test-checkout") == "Card (test mode)"
    assert label("pending") == "Waiting for the money"
    assert label("applied") == "Applied"
    assert label("partly paid") == "Partly paid"
    assert label("something-new") == "Something new"
    assert label(None) == ""


def test_staff_payment_pages_show_labels_not_codes(app, client):
    """The staff payments list, a payment and an invoice show providers and statuses as
    words, never `offline`, `pending` or `applied`."""
    agent = factories.staff(email="agent@example.com")
    staff_login(client, "agent@example.com")
    invoice, _ = factories.invoice(total_cents=50_000)
    pending = offline_payment(app, invoice, 20_000)
    applied = applied_payment(app, invoice, 10_000, agent)
    listing = client.get("/staff/payments/").get_data(as_text=True)
    assert "<td>offline</td>" not in listing
    assert "<td>Bank transfer or cheque</td>" in listing
    assert ">Waiting for the money</span>" in listing
    assert ">Applied</span>" in listing
    assert ">pending</span>" not in listing and ">applied</span>" not in listing
    page = client.get(f"/staff/payments/{pending.id}").get_data(as_text=True)
    assert "<dd>Bank transfer or cheque ·" in page
    shown = client.get(f"/staff/invoices/{invoice.id}").get_data(as_text=True)
    assert "<td>Bank transfer or cheque</td>" in shown and "<td>offline</td>" not in shown
    assert ">Partly paid</span>" in shown and ">partly paid</span>" not in shown
    assert applied.status == "applied"


def test_a_page_with_several_forms_repeats_no_csrf_id(make_app):
    """HTML ids are unique: the invoice page holds several forms, each carrying the CSRF token
    (F1) without `id="csrf_token"`; the token still works (the invoice's question posts)."""
    app = make_app(WTF_CSRF_ENABLED=True)
    from portal.db import db

    with app.app_context():
        db.connect(reuse_if_open=True)
        customer = factories.customer()
        user = factories.portal_user(customer, email="pat@acme.example")
        invoice, _ = factories.invoice(customer, total_cents=50_000)
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        signed_in = {"email": user.email, "password": factories.PASSWORD, "csrf_token": token}
        assert client.post("/login", data=signed_in).status_code in (302, 303)
        page = client.get(f"/invoices/{invoice.public_id}").get_data(as_text=True)
        assert page.count('name="csrf_token"') >= 2
        assert 'id="csrf_token"' not in page
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        question = {"subject": "Why", "message": "Which order is this?", "csrf_token": token}
        posted = client.post(f"/invoices/{invoice.public_id}/question", data=question)
        assert posted.status_code in (302, 303)
        db.close()


def test_quick_pay_names_the_customer_by_initials(client):
    """A9: a guest sees "Billed to A… M… (account ending 01)", legible, not the full name and
    not the asterisk runs that read as a broken page."""
    customer = factories.customer(name="Acme Manufacturing", account_number="C-0101")
    invoice, code = factories.invoice(customer, total_cents=10_000)
    client.post("/pay/", data={"number": invoice.number, "secret": code})
    page = client.get("/pay/invoice").get_data(as_text=True)
    assert "Billed to A… M… (account ending 01)" in page
    assert "Acme Manufacturing" not in page and "**" not in page


def test_audit_log_reads_as_who_did_what_with_the_detail_folded(client):
    """The audit log is one line per entry ("system customer.updated on Customer 7") with its
    JSON detail inside a closed <details>, not a table whose narrow
    Detail column made the page thousands of pixels tall."""
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    customer = factories.customer()
    with write_txn():
        audit.record("customer.updated", customer, changes={"name": ["A" * 300, "B" * 300]})
    html = client.get("/staff/audit/").get_data(as_text=True)
    results = html.split('id="results"')[1]
    assert '<th scope="col">Detail</th>' not in results
    lines = re.findall(r'<li class="audit-line">(.*?)</li>', results, re.S)
    line = next(li for li in lines if "customer.updated" in li)
    what = re.sub(r"<[^>]+>|\s+", " ", line.split("<details")[0])
    assert re.search(r"system +customer\.updated +on Customer +" + str(customer.id), what), what
    assert (
        "<details" in line
        and "<summary>Detail</summary>" in line
        and "open" not in line.split("<details")[1].split(">")[0]
    )
