"""Wording and papercuts (issue 19): codes shown as people read them, one `label` filter."""

from portal.filters import label

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
