"""Money tells the truth across features (issue 13): each finding reproduced as a journey.

Every test here failed before its fix: the figure a customer reads (amount due, pending,
credit, what "Pay all" charges) now comes from one definition (`portal/services/figures.py`)
on every page, export and back-office page.
"""

import csv
import io
import re
from datetime import date, timedelta

from portal.models import AuditLog, Invoice, Payment, PaymentApplication
from portal.services import payments

from . import factories
from .conftest import login, staff_login

TODAY = date.today()


def _account():
    customer = factories.customer(name="Acme Manufacturing", email="ap@acme.example")
    user = factories.portal_user(customer, email="pat@acme.example")
    return customer, user


def _text(response) -> str:
    """A page's visible text, tags stripped and white space folded, for reading figures."""
    html = re.sub(
        r"<(script|style)[^>]*>.*?</\1>", " ", response.get_data(as_text=True), flags=re.S
    )
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _pay_offline(client, invoices_and_cents, name="Pat", email="pat@acme.example"):
    """Pay through the real review and checkout forms with a bank transfer."""
    lines = [f"{inv.id}:{cents}" for inv, cents in invoices_and_cents]
    response = client.post(
        "/invoices/pay",
        data={"line": lines, "payer_name": name, "payer_email": email, "provider": "offline"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return Payment.select().order_by(Payment.id.desc()).first()


# --- finding 1: a void invoice owes nothing, everywhere -----------------------------------


def test_finding1_void_invoice_reads_void_with_nothing_due_everywhere(app, client):
    customer, user = _account()
    void, _ = factories.invoice(customer, number="INV-VOID", total_cents=30_000, status="void")
    factories.invoice(customer, number="INV-OPEN", total_cents=10_000)
    login(client, user.email)

    page = _text(client.get(f"/invoices/{void.public_id}"))
    assert "$300.00" not in page.split("Invoice total")[0].split("Balance due")[-1]
    assert "Balance due Void" in page and "nothing is due" in page
    assert "Pay $" not in page

    listing = client.get("/invoices/?status=all").get_data(as_text=True)
    row = listing[listing.index("INV-VOID") :].split("</tr>")[0]
    assert "$0.00" in row and "Void" in row
    assert "balance $100.00" in _text(client.get("/invoices/?status=all&q=INV"))

    exported = client.get("/invoices/export.csv?status=all").get_data(as_text=True)
    rows = {r["number"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert rows["INV-VOID"]["balance"] == "0.00" and rows["INV-VOID"]["status"] == "void"

    home = client.get("/").get_data(as_text=True)
    recent = home[home.index("INV-VOID") :].split("</tr>")[0]
    assert "$0.00" in recent and "$300.00" in recent  # total still shown, nothing due

    # It cannot be paid, whatever is posted.
    client.post(
        "/invoices/pay",
        data={
            "line": [f"{void.id}:30000"],
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": "offline",
        },
    )
    assert not Payment.select().exists()


# --- finding 2: a pending payment shows, and is not paid twice ----------------------------


def test_finding2_pending_transfer_marks_invoices_and_a_second_payment_pays_only_the_rest(
    app, client
):
    customer, user = _account()
    first, _ = factories.invoice(customer, number="INV-10018", total_cents=30_000)
    second, _ = factories.invoice(customer, number="INV-10043", total_cents=378_280)
    login(client, user.email)
    pending = _pay_offline(client, [(first, 30_000), (second, 100_000)])
    assert pending.status == "pending"

    listing = _text(client.get("/invoices/"))
    assert "$300.00 pending · bank transfer or cheque since" in listing
    assert "$1,000.00 pending" in listing
    page = _text(client.get(f"/invoices/{second.public_id}"))
    assert f"$1,000.00 pending — bank transfer or cheque {pending.receipt_number}" in page
    assert "You can pay the rest: $2,782.80" in page and "Pay $2,782.80" in page
    assert "Nothing more to pay" in _text(client.get(f"/invoices/{first.public_id}"))
    assert "Pending $1,300.00" in _text(client.get("/"))

    # Paying the covered invoice again is refused with the reason; the rest can be paid.
    review = _text(
        client.post(
            "/invoices/review", data={"invoice": [first.id, second.id], "action": "selected"}
        )
    )
    assert f"already covered by bank transfer or cheque {pending.receipt_number}" in review
    before = Payment.select().count()
    client.post(
        "/invoices/pay",
        data={
            "line": [f"{second.id}:378280"],
            "payer_name": "Pat",
            "payer_email": "pat@acme.example",
            "provider": "offline",
        },
    )
    assert Payment.select().count() == before  # more than is not pending: refused
    rest = _pay_offline(client, [(second, 278_280)])
    assert rest.amount_cents == 278_280
    assert "Nothing more to pay" in _text(client.get(f"/invoices/{second.public_id}"))


def test_finding2_payer_cancels_their_own_pending_payment_and_nobody_else_can(app, client):
    customer, user = _account()
    invoice, _ = factories.invoice(customer, total_cents=50_000)
    colleague = factories.portal_user(customer, email="sam@acme.example")
    login(client, user.email)
    pending = _pay_offline(client, [(invoice, 50_000)])

    other = app.test_client()
    login(other, colleague.email)
    assert "Cancel this payment" not in other.get(f"/invoices/{invoice.public_id}").get_data(
        as_text=True
    )
    assert other.post(f"/payments/{pending.public_id}/cancel").status_code == 404
    assert Payment.get_by_id(pending.id).status == "pending"

    page = client.get(f"/invoices/{invoice.public_id}").get_data(as_text=True)
    assert "Cancel this payment" in page
    response = client.post(f"/payments/{pending.public_id}/cancel")
    assert response.status_code == 303
    assert Payment.get_by_id(pending.id).status == "cancelled"
    assert AuditLog.select().where(AuditLog.action == "payment.offline_cancelled").exists()
    after = _text(client.get(f"/invoices/{invoice.public_id}"))
    assert "pending" not in after.lower().split("balance due")[-1].split("question this")[0]
    assert "Pay $500.00" in after


# --- finding 3 and 4: confirming what arrived, and the credit it leaves -------------------


def test_findings3_4_staff_confirm_what_arrived_and_the_credit_shows_everywhere(
    app, client, mailbox
):
    customer, user = _account()
    older, _ = factories.invoice(
        customer, number="INV-10018", total_cents=30_000, issue_date=TODAY - timedelta(days=20)
    )
    newer, _ = factories.invoice(customer, number="INV-10043", total_cents=50_000)
    login(client, user.email)
    pending = _pay_offline(client, [(older, 30_000), (newer, 50_000)])

    staff = factories.staff(email="agent@example.com")
    office = app.test_client()
    staff_login(office, staff.email)
    page = _text(office.get(f"/staff/payments/{pending.id}"))
    assert "What the payer meant it for" in page
    assert "INV-10018" in page and "$300.00" in page and "INV-10043" in page and "$500.00" in page
    assert "Not applied to any invoice" not in page
    invoice_page = _text(office.get(f"/staff/invoices/{older.id}"))
    assert f"Pending $300.00 · {pending.receipt_number}" in invoice_page

    # A bad amount is refused next to its field and decides nothing.
    bad = office.post(
        f"/staff/payments/{pending.id}/confirm",
        data={"amount": "lots", "received_on": TODAY.isoformat()},
    )
    assert bad.status_code == 422 and 'value="lots"' in bad.get_data(as_text=True)
    assert Payment.get_by_id(pending.id).status == "pending"

    mailbox.clear()
    response = office.post(
        f"/staff/payments/{pending.id}/confirm",
        data={"amount": "1,000.00", "received_on": TODAY.isoformat()},
    )
    assert response.status_code == 303
    confirmed = Payment.get_by_id(pending.id)
    assert (confirmed.amount_cents, confirmed.unapplied_cents) == (100_000, 20_000)
    assert not confirmed.flagged  # staff decided it knowingly: credit, not an alarm
    assert Invoice.get_by_id(older.id).balance_cents == 0
    assert Invoice.get_by_id(newer.id).balance_cents == 0
    receipt_mail = mailbox.wait_for(1)[0]
    assert "$200.00 is kept as credit" in receipt_mail.get_payload() or "$200.00" in str(
        receipt_mail
    )

    # The customer sees the credit on the dashboard, the receipt and the statement.
    assert "Credit available $200.00" in _text(client.get("/"))
    receipt = _text(client.get(f"/statements/payments/{confirmed.public_id}"))
    assert "Amount $1,000.00" in receipt and "Kept as credit $200.00" in receipt
    statement = _text(client.get(f"/statements/?start={(TODAY - timedelta(days=30)).isoformat()}"))
    assert "Payment — thank you ($200.00 kept as credit) $1,000.00" in statement
    assert "Closing balance $800.00 $1,000.00 -$200.00" in statement
    assert "$200.00" in _text(office.get(f"/staff/customers/{customer.id}"))


def test_finding4_less_than_intended_is_applied_oldest_due_first(app, client):
    customer, user = _account()
    older, _ = factories.invoice(
        customer, total_cents=30_000, issue_date=TODAY - timedelta(days=40), due_days=30
    )
    newer, _ = factories.invoice(customer, total_cents=50_000)
    login(client, user.email)
    pending = _pay_offline(client, [(newer, 50_000), (older, 30_000)])
    staff = factories.staff()
    with app.test_request_context():
        payments.confirm_offline(pending, staff, 40_000, TODAY - timedelta(days=1))
    assert Invoice.get_by_id(older.id).balance_cents == 0
    assert Invoice.get_by_id(newer.id).balance_cents == 40_000
    payment = Payment.get_by_id(pending.id)
    assert payment.unapplied_cents == 0 and payment.received_at.date() == TODAY - timedelta(days=1)
    assert sum(a.amount_cents for a in PaymentApplication.select()) == 40_000


def test_finding4_rejecting_tells_the_payer_why(app, client, mailbox):
    customer, user = _account()
    invoice, _ = factories.invoice(customer, total_cents=50_000)
    login(client, user.email)
    pending = _pay_offline(client, [(invoice, 50_000)])
    staff = factories.staff(email="agent@example.com")
    office = app.test_client()
    staff_login(office, staff.email)
    mailbox.clear()
    office.post(
        f"/staff/payments/{pending.id}/reject",
        data={"reject-reason": "No transfer with that reference reached our bank"},
    )
    message = mailbox.wait_for(1)[0]
    assert message["To"] == "pat@acme.example"
    assert "No transfer with that reference reached our bank" in str(message)
    status = _text(client.get(f"/payments/{pending.attempt.key}"))
    assert "No transfer with that reference reached our bank" in status


def test_finding3_customer_applies_credit_to_an_open_invoice(app, client, mailbox):
    customer, user = _account()
    invoice, _ = factories.invoice(customer, total_cents=50_000)
    factories.payment(customer, amount_cents=20_000, unapplied_cents=20_000, status="applied")
    login(client, user.email)
    page = _text(client.get("/invoices/credit"))
    assert "Credit available: $200.00" in page
    # Too much is refused next to the field and changes nothing.
    key = f"amount-{invoice.id}"
    refused = client.post("/invoices/credit", data={key: "300.00"})
    assert refused.status_code == 422
    assert Invoice.get_by_id(invoice.id).balance_cents == 50_000
    mailbox.clear()
    applied = client.post("/invoices/credit", data={key: "200.00"})
    assert applied.status_code == 303
    assert Invoice.get_by_id(invoice.id).balance_cents == 30_000
    assert "Credit available" not in _text(client.get("/"))
    assert AuditLog.select().where(AuditLog.action == "payment.credit_applied").exists()
    assert mailbox.wait_for(1)[0]["To"] == "pat@acme.example"
    # A site-limited login does not see the company's credit.
    site = factories.site(customer)
    limited = factories.portal_user(customer, email="site@acme.example", sites=[site])
    other = app.test_client()
    login(other, limited.email)
    assert other.get("/invoices/credit").status_code == 404


def test_finding3_staff_refund_credit(app, client, mailbox):
    customer, _ = _account()
    payment = factories.payment(
        customer,
        amount_cents=20_000,
        unapplied_cents=20_000,
        status="applied",
        flagged=True,
        payer_email="pat@acme.example",
    )
    staff = factories.staff(email="agent@example.com")
    staff_login(client, staff.email)
    too_much = client.post(
        f"/staff/payments/{payment.id}/refund",
        data={"amount": "250.00", "reference": "BANK-1", "note": "Customer asked"},
    )
    assert too_much.status_code == 422 and "At most $200.00" in too_much.get_data(as_text=True)
    mailbox.clear()
    done = client.post(
        f"/staff/payments/{payment.id}/refund",
        data={"amount": "200.00", "reference": "BANK-1", "note": "Customer asked"},
    )
    assert done.status_code == 303
    fresh = Payment.get_by_id(payment.id)
    assert fresh.unapplied_cents == 0 and not fresh.flagged
    assert mailbox.wait_for(1)[0]["To"] == "pat@acme.example"
    assert AuditLog.select().where(AuditLog.action == "payment.refunded").exists()


# --- finding 7: "Pay all" says what the review charges -----------------------------------


def test_finding7_pay_all_shows_what_the_review_will_charge(app, client):
    customer, user = _account()
    factories.invoice(customer, total_cents=100_000, discount_bp=200, discount_days=10)
    factories.invoice(customer, total_cents=34_000)
    login(client, user.email)
    listing = _text(client.get("/invoices/"))
    label = re.search(r"Pay all open \((\$[\d,.]+)\)", listing).group(1)
    review = _text(client.post("/invoices/review", data={"action": "all"}))
    charged = re.search(r"Pay (\$[\d,.]+)", review.split("Total")[1]).group(1)
    assert label == charged == "$1,320.00"  # $1,340.00 less the 2% discount on $1,000


def test_an_invoice_with_a_pending_payment_cannot_be_voided(app, client):
    """Found by the journey test: voiding an invoice a transfer is on its way for would turn
    the transfer into an unexplained credit when it arrives."""
    from portal.services import backoffice

    customer, user = _account()
    invoice, _ = factories.invoice(customer, total_cents=50_000)
    login(client, user.email)
    _pay_offline(client, [(invoice, 50_000)])
    staff = factories.staff()
    try:
        backoffice.void_invoice(invoice, "Raised in error", staff)
    except backoffice.Problem as exc:
        assert "in progress" in str(exc.message if hasattr(exc, "message") else exc)
    else:
        raise AssertionError("a pending payment's invoice was voided")
    assert Invoice.get_by_id(invoice.id).status == "open"


def test_finding1_quick_pay_says_plainly_that_a_void_invoice_is_not_due(app, client):
    customer, _ = _account()
    invoice, code = factories.invoice(customer, number="INV-VOID", total_cents=30_000)
    staff = factories.staff()
    from portal.services import backoffice

    backoffice.void_invoice(invoice, "Raised in error", staff)
    client.post("/pay/", data={"number": "INV-VOID", "secret": code})
    page = _text(client.get("/pay/invoice"))
    # Found (the code is right), and it says so plainly, with no way to pay.
    assert "INV-VOID" in page and "Nothing to pay" in page and "voided" in page
    assert "Continue to payment" not in page
    assert "Balance due Void" in page
    client.post(
        "/pay/invoice",
        data={
            "amount": "300.00",
            "payer_name": "G",
            "payer_email": "g@example.com",
            "provider": "offline",
        },
    )
    assert not Payment.select().exists()


def test_finding2_a_guest_cancels_the_transfer_they_started_and_nobody_else_can(app, client):
    customer, _ = _account()
    invoice, code = factories.invoice(customer, number="INV-G1", total_cents=30_000)
    client.post("/pay/", data={"number": "INV-G1", "secret": code})
    started = client.post(
        "/pay/invoice",
        data={
            "amount": "300.00",
            "payer_name": "G",
            "payer_email": "g@example.com",
            "provider": "offline",
        },
    )
    assert started.status_code == 303
    pending = Payment.get()
    status = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Cancel this payment" in status
    stranger = app.test_client()
    assert stranger.post(f"/payments/{pending.public_id}/cancel").status_code == 404
    assert client.post(f"/payments/{pending.public_id}/cancel").status_code == 303
    assert Payment.get_by_id(pending.id).status == "cancelled"
    assert "You cancelled this payment" in _text(client.get(started.headers["Location"]))


def test_paying_again_after_a_rejected_transfer_is_a_new_payment(app, client):
    """Found by the journey test: the same transfer started again within ten minutes of a
    rejection (or a cancellation) was taken for a double click and answered with the
    rejected payment, so the payer could not pay."""
    customer, user = _account()
    invoice, _ = factories.invoice(customer, total_cents=50_000)
    login(client, user.email)
    first = _pay_offline(client, [(invoice, 50_000)])
    with app.test_request_context():
        payments.reject_offline(first, factories.staff(), "Never arrived")
    second = _pay_offline(client, [(invoice, 50_000)])
    assert second.id != first.id and second.status == "pending"
    response = client.post(f"/payments/{second.public_id}/cancel")
    assert response.status_code == 303
    third = _pay_offline(client, [(invoice, 50_000)])
    assert third.id not in (first.id, second.id) and third.status == "pending"
