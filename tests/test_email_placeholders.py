"""Issue 13, finding 5 of the money issue: every placeholder an email template's page
documents is filled in real sends.

Staff edit a template with the placeholders its page lists; previews and test sends used
to look right while real receipts went out as "Hello , ... We received  for ." because
real sends passed objects the override never saw. Here each kind of email that a real
event sends gets an override using every documented placeholder, the event is triggered
through the real service or HTTP route, the email crosses the test SMTP server, and each
placeholder must arrive filled with the value it promises.
"""

import html
import io
import re
from datetime import date

import pytest
from flask import session

from portal.db import write_txn
from portal.filters import datefmt
from portal.models import (
    AccessRequest,
    Contact,
    Invoice,
    OutboxMessage,
    Payment,
    Setting,
)
from portal.services import (
    access,
    cases,
    email_templates,
    importer,
    outbox,
    payments,
    quotes,
    settings,
)
from portal.services.email_templates import KINDS, TemplateProblem
from portal.services.providers import Event
from portal.web import absolute_url

from . import factories
from .conftest import HX, login, staff_login

PHONE = "555-0199"


class Starts:
    """An expected value that only has to start with this text (a link with a token)."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __eq__(self, other):
        return isinstance(other, str) and other.startswith(self.prefix)

    def __repr__(self):
        return f"Starts({self.prefix!r})"


def every_placeholder(kind: str) -> tuple[str, str]:
    """An override that uses every documented placeholder, each between markers."""
    names = email_templates.placeholders(kind)
    body = "\n".join(f"<<{n}>>{{{{ {n} }}}}<</{n}>>" for n in names) + "\n"
    return "{{ portal_name }} check of " + kind, body


def values_in(text: str) -> dict:
    return dict(re.findall(r"<<(\w+)>>(.*?)<</\1>>", text, re.DOTALL))


def arrived(mailbox, kind: str):
    """The last `kind` email the outbox queued, as the SMTP server received it."""
    outbox.deliver_due()  # services called outside a request leave their emails queued
    row = (
        OutboxMessage.select()
        .where(OutboxMessage.kind == kind)
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    assert row is not None, f"no {kind} email was queued"
    for _ in range(2):
        for message in mailbox.wait_for(1):
            if message["Message-ID"] == row.message_id:
                return message
        outbox.deliver_due()
    raise AssertionError(f"the {kind} email did not reach the SMTP server")


# --- the events, each through the service or route that sends its email in production ---


def guest_pays(client, invoice, code, amount, provider):
    """A guest pays through the quick-pay pages (the test-checkout simulator or offline)."""
    assert client.post("/pay/", data={"number": invoice.number, "secret": code}).status_code == 303
    response = client.post(
        "/pay/invoice",
        data={
            "amount": amount,
            "payer_name": "Pat Payer",
            "payer_email": "pat@example.com",
            "provider": provider,
        },
    )
    assert response.status_code == 303, response.text
    if provider == "test-checkout":
        back = client.post(response.headers["Location"], data={"outcome": "pay"})
        assert back.status_code == 303
        client.get(back.headers["Location"])


def receipt_link(payment) -> str:
    return absolute_url("statements.receipt", payment_id=payment.id)


def payment_with_credit(app, paid=30_000, owed=10_000):
    """A $300 card payment on an invoice that meanwhile owes only $100 (another payment got
    there first): the payments core applies $100 and keeps $200 as credit."""
    invoice, _ = factories.invoice(total_cents=100_000)
    with app.test_request_context("/pay/invoice", method="POST"):
        session["payer"] = "payer-1"
        attempt = payments.checkout(
            invoice.customer,
            [(invoice, paid)],
            "test-checkout",
            "Pat Payer",
            "pat@example.com",
            guest=True,
        ).attempt
    Invoice.update(amount_paid_cents=100_000 - owed).where(Invoice.id == invoice.id).execute()
    payment = payments.apply_event(
        Event(
            provider="test-checkout",
            attempt_key=attempt.key,
            status="succeeded",
            reference=f"tcp_{attempt.key[:12]}",
            amount_cents=paid,
            currency="USD",
            event_id=f"evt_{attempt.key[:12]}",
        )
    )
    assert payment.unapplied_cents == paid - owed
    return invoice, payment


def ev_invitation(app, client):
    customer = factories.customer(name="Acme Manufacturing")
    contact = Contact.create(
        customer=customer, email="kim@acme.example", first_name="Kim", last_name="Lee"
    )
    access.invite(contact, ["invoices"], None, factories.staff(admin=True))
    return {
        "name": "Kim Lee",
        "customer_name": "Acme Manufacturing",
        "link": Starts("http://localhost/invitation/"),
        "expires": "7 days",
    }


def ev_access_approved(app, client):
    customer = factories.customer(name="Acme Manufacturing")
    admin = factories.portal_user(customer)
    waiting = factories.portal_user(
        customer, status="pending", password=None, first_name="Robin", last_name="Clerk"
    )
    access.approve_registration(waiting, admin)
    return {
        "name": "Robin Clerk",
        "customer_name": "Acme Manufacturing",
        "link": Starts("http://localhost/invitation/"),
        "expires": "7 days",
    }


def request_access(client):
    data = {
        "name": "Dana Smith",
        "company": "Beta Foods",
        "email": "dana@beta.example",
        "phone": "555-0101",
        "account_number": "",
        "message": "I pay the invoices.",
    }
    assert client.post("/request-access/", data=data).status_code == 303
    return AccessRequest.get()


def ev_access_rejected(app, client):
    access.reject_request(request_access(client), factories.staff(), note="Ask your manager.")
    return {"name": "Dana Smith", "note": "Ask your manager."}


def ev_access_rejected_without_note(app, client):
    customer = factories.customer()
    waiting = factories.portal_user(customer, status="pending", password=None, first_name="Jo")
    access.reject_registration(waiting, factories.staff())
    return {"name": Starts("Jo "), "note": email_templates.NO_NOTE}


def register(client, customer, email="robin@acme.example"):
    invoice, code = factories.invoice(customer)
    data = {"invoice_number": invoice.number, "code": code, "name": "Robin Clerk", "email": email}
    assert client.post("/register/", data=data).status_code == 303


def ev_registration(app, client):
    register(client, factories.customer(name="Acme Manufacturing", allow_self_registration=True))
    return {
        "name": "Robin Clerk",
        "customer_name": "Acme Manufacturing",
        "link": Starts("http://localhost/register/"),
        "expires": "1 day",
    }


def with_admin():
    customer = factories.customer(name="Acme Manufacturing", allow_self_registration=True)
    factories.portal_user(customer, email="boss@acme.example", first_name="Kim", last_name="Boss")
    return customer


def ev_access_request_pending(app, client):
    """Staff pass on an access request for a company with an admin: the admin decides."""
    customer = with_admin()
    row = AccessRequest.create(
        name="Robin Clerk",
        company="Acme",
        email="robin@elsewhere.example",
        account_number=customer.account_number,
    )
    access.approve_request(row, factories.staff())
    return {
        "admin_name": "Kim Boss",
        "name": "Robin Clerk",
        "email": "robin@elsewhere.example",
        "customer_name": "Acme Manufacturing",
        "domain_note": (
            "Their address's domain (elsewhere.example) matches none of your company's contacts."
        ),
        "link": "http://localhost/company/",
    }


def ev_two_step_reset(app, client):
    """Staff reset a customer login's two-step sign-in: the customer is told."""
    from portal.services import two_step

    user = factories.portal_user(first_name="Pat", last_name="Buyer")
    two_step.reset(user, factories.staff(admin=True))
    return {"name": "Pat Buyer"}


def ev_registration_pending(app, client):
    register(client, with_admin())
    return {"name": "Robin Clerk", "customer_name": "Acme Manufacturing"}


def ev_registration_request(app, client):
    register(client, with_admin())
    return {
        "admin_name": "Kim Boss",
        "name": "Robin Clerk",
        "email": "robin@acme.example",
        "customer_name": "Acme Manufacturing",
        "link": "http://localhost/company/",
    }


def ev_registration_exists(app, client):
    customer = factories.customer(name="Acme Manufacturing", allow_self_registration=True)
    factories.portal_user(customer, email="robin@acme.example", first_name="Robin", last_name="X")
    register(client, customer, email="robin@acme.example")
    return {
        "name": "Robin X",
        "customer_name": "Acme Manufacturing",
        "login_link": "http://localhost/login",
        "reset_link": "http://localhost/password/forgot",
    }


def ev_registration_waiting(app, client):
    """Registering again while the first registration waits for the company's admin: no
    "Sign in here" (issue 18), the login cannot sign in yet."""
    customer = with_admin()
    register(client, customer)
    register(client, customer)
    return {"name": "Robin Clerk", "customer_name": "Acme Manufacturing"}


def ev_registration_closed(app, client):
    """A proven invoice of a company that invites only: the email says how to get a login
    instead of a "check your email" that nothing follows (issue 18)."""
    settings.update({"request_access": True})
    register(client, factories.customer(name="Acme Manufacturing"))
    return {
        "name": "Robin Clerk",
        "customer_name": "Acme Manufacturing",
        "link": "http://localhost/request-access/",
    }


def ev_access_request_received(app, client):
    """The acknowledgement of an access request (issue 18)."""
    settings.update({"request_access": True})
    data = {"name": "Robin Clerk", "company": "Acme", "email": "robin@elsewhere.example"}
    assert client.post("/request-access/", data=data).status_code == 303
    return {"name": "Robin Clerk", "company": "Acme"}


def ev_password_reset(app, client):
    user = factories.portal_user(email="lee@example.com", first_name="Lee", last_name="Ray")
    assert client.post("/password/forgot", data={"email": user.email}).status_code == 303
    return {"name": "Lee Ray", "link": Starts("http://localhost/reset/"), "expires": "1 hour"}


def ev_password_changed(app, client):
    customer = factories.customer(name="Acme Manufacturing")
    user = factories.portal_user(customer, first_name="Lee", last_name="Ray")
    login(client, user.email)
    new = "plum orchard sunrise"
    data = {"current_password": factories.PASSWORD, "password": new, "confirm": new}
    assert client.post("/account/password", data=data).status_code == 303
    return {"name": "Lee Ray", "customer_name": "Acme Manufacturing"}


def ev_pay_link(app, client):
    customer = factories.customer(name="Acme Manufacturing", email="billing@acme.example")
    invoice, _ = factories.invoice(customer, total_cents=123_456)
    assert client.post("/pay/link", data={"number": invoice.number}).status_code == 200
    return {
        "invoice_number": invoice.number,
        "customer_name": "Acme Manufacturing",
        "balance": "$1,234.56",
        "due_date": datefmt(invoice.due_date),
        "link": Starts("http://localhost/pay/link/"),
    }


def ev_payment_pending(app, client):
    invoice, code = factories.invoice(total_cents=40_000)
    guest_pays(client, invoice, code, "150.00", "offline")
    payment = Payment.get()
    return {
        "name": "Pat Payer",
        "receipt_number": payment.receipt_number,
        "amount": "$150.00",
        "invoices": f"{invoice.number} ($150.00)",
        "invoice_lines": f"Invoice {invoice.number}: $150.00",
        "instructions": Starts("Pay by bank transfer to account 12-3456-7890123"),
        "link": receipt_link(payment),
    }


def ev_receipt(app, client):
    invoice, code = factories.invoice(total_cents=100_000)
    guest_pays(client, invoice, code, "300.00", "test-checkout")
    payment = Payment.get()
    return {
        "name": "Pat Payer",
        "receipt_number": payment.receipt_number,
        "amount": "$300.00",
        "date": Starts(datefmt(payment.received_at)),
        "reference": payment.provider_reference,
        "invoices": f"{invoice.number} ($300.00)",
        "invoice_lines": f"Invoice {invoice.number}: paid $300.00; balance now $700.00",
        "credit": "Nothing was left over.",
        "link": receipt_link(payment),
    }


def ev_receipt_with_credit(app, client):
    invoice, payment = payment_with_credit(app)
    return {
        "name": "Pat Payer",
        "receipt_number": payment.receipt_number,
        "amount": "$300.00",
        "invoices": f"{invoice.number} ($100.00)",
        "invoice_lines": f"Invoice {invoice.number}: paid $100.00; balance now $0.00",
        "credit": "$200.00 is kept as credit on your account.",
        "link": receipt_link(payment),
    }


def ev_payment_rejected(app, client):
    invoice, code = factories.invoice(total_cents=40_000)
    guest_pays(client, invoice, code, "150.00", "offline")
    payment = Payment.get()
    payments.reject_offline(payment, factories.staff(), "No transfer reached us.")
    return {
        "name": "Pat Payer",
        "receipt_number": payment.receipt_number,
        "amount": "$150.00",
        "invoices": f"{invoice.number} ($150.00)",
        "reason": "No transfer reached us.",
        "link": receipt_link(payment),
    }


def ev_credit_applied(app, client):
    _, payment = payment_with_credit(app)
    customer = payment.customer
    other, _ = factories.invoice(customer, total_cents=15_000)
    payments.apply_credit(customer, [(other, 15_000)], factories.staff())
    return {
        "name": customer.name,
        "amount": "$150.00",
        "invoices": f"{other.number} ($150.00)",
        "credit_left": "$50.00",
        "link": "http://localhost/statements/payments",
    }


def _autopay_enrolment(app, max_cents=10_000):
    """A company with autopay on (a saved card row, as Stripe's setup leaves it)."""
    from portal.models import Autopay, SavedMethod

    customer = factories.customer(name="Acme Manufacturing")
    admin = factories.portal_user(
        customer, email="pat@acme.example", first_name="Pat", last_name="Buyer"
    )
    method = SavedMethod.create(customer=customer, method_id="pm_test", brand="visa", last4="4242")
    Autopay.create(
        customer=customer,
        method=method,
        max_cents=max_cents,
        starts_on=date(2000, 1, 1),
        enrolled_by=admin,
    )
    return customer, admin, method


def ev_autopay_failed(app, client):
    """An invoice over the autopay limit: the worker's pass tells the admins (no charge)."""
    from portal.services import autopay

    app.config["PAYMENT_PROVIDERS"] = [*app.config["PAYMENT_PROVIDERS"], "stripe"]
    customer, admin, _ = _autopay_enrolment(app)
    invoice, _ = factories.invoice(customer, total_cents=25_000)
    assert autopay.run_due(today=invoice.due_date) == 1
    return {
        "name": "Pat Buyer",
        "invoice": invoice.number,
        "amount": "$250.00",
        "card": "Visa •••• 4242",
        "reason": "It is over your autopay limit of $100.00, so it was not charged.",
        "next_step": "Please pay it yourself in the portal.",
        "link": absolute_url("billing.show", invoice_id=invoice.id),
    }


def ev_autopay_stopped(app, client):
    """The card autopay used is removed: autopay stops and the admins are told."""
    from portal.services import autopay

    _, _, method = _autopay_enrolment(app)
    autopay.card_removed(method)
    return {
        "name": "Pat Buyer",
        "reason": "The card it used (Visa •••• 4242) was removed.",
        "link": absolute_url("autopay.show"),
    }


def ev_refund_recorded(app, client):
    _, payment = payment_with_credit(app)
    payments.record_refund(payment, factories.staff(), 5_000, note="Sent back to your bank.")
    return {
        "name": "Pat Payer",
        "receipt_number": payment.receipt_number,
        "amount": "$50.00",
        "note": "Sent back to your bank.",
        "credit_left": "$150.00",
        "link": receipt_link(payment),
    }


def buyer():
    customer = factories.customer(name="Acme Manufacturing")
    return factories.portal_user(customer, email="pat@acme.example", first_name="Pat")


def ev_case_update(app, client):
    case = cases.create_case(buyer(), "Damaged pallet", "Two boxes arrived crushed.")
    cases.staff_reply(case, factories.staff(), "A replacement ships today.", "waiting")
    return {
        "name": "Pat",
        "case_number": case.number,
        "subject": "Damaged pallet",
        "message": Starts("A replacement ships today."),
        "link": f"http://localhost/cases/{case.public_id}",
    }


def ev_quote_published(app, client):
    user = buyer()
    customer = user.contact.customer
    rfq = factories.rfq(customer, user=user)
    quote = factories.quote(customer, status="draft", rfq_=rfq, valid_until=date(2099, 1, 31))
    quotes.publish(quote, factories.staff())
    return {
        "name": "Pat",
        "quote_number": quote.number,
        "total": "$100.00",
        "valid_until": "Jan 31, 2099",
        "link": Starts("http://localhost/quotes/"),
    }


def ship(carrier: str, tracking: str):
    customer = factories.customer(name="Acme Manufacturing", account_number="ACME01")
    today = date.today().isoformat()
    for kind, text in (
        ("orders", f"number,account_number,order_date,customer_po\nSO-1,ACME01,{today},PO-77\n"),
        (
            "shipments",
            "order_number,number,shipped_on,carrier,tracking_number,delivered_on\n"
            f"SO-1,SH-1,{today},{carrier},{tracking},\n",
        ),
    ):
        result = importer.import_csv(kind, io.StringIO(text))
        assert result.ok, result.errors
    return customer


def ev_shipment_sent(app, client):
    ship("UPS", "1Z999AA1")
    return {
        "name": "Acme Manufacturing",
        "order_number": "SO-1",
        "customer_po": "PO-77",
        "shipment_number": "SH-1",
        "carrier": "UPS",
        "tracking_number": "1Z999AA1",
        "tracking_link": "https://www.ups.com/track?tracknum=1Z999AA1",
        "link": Starts("http://localhost/orders/"),
    }


def ev_shipment_sent_without_tracking(app, client):
    ship("", "")
    return {
        "carrier": "our carrier",
        "tracking_number": "not available yet",
        "tracking_link": Starts("http://localhost/orders/"),
    }


def ev_case_received(app, client):
    """A customer asks about an invoice ("Question this invoice"): the case is acknowledged."""
    user = buyer()
    invoice, _ = factories.invoice(user.contact.customer)
    case = cases.create_case(user, "Wrong price", "Line 2 is not our price.", invoice=invoice)
    return {
        "name": user.display_name,
        "case_number": case.number,
        "subject": "Wrong price",
        "about": f"invoice {invoice.number}",
        "link": f"http://localhost/cases/{case.public_id}",
    }


def ev_rfq_received(app, client):
    """A customer sends a request for quote through the service: it is acknowledged."""
    user = buyer()
    product = factories.product(description="Hex bolt M8")
    rfq = quotes.create_rfq(
        user,
        [quotes.Line(product, "Hex bolt M8", 2500)],
        needed_by=date(2099, 1, 31),
    )
    return {
        "name": user.display_name,
        "rfq_number": rfq.number,
        "items": "- Hex bolt M8 × 2.5",
        "needed_by": "Jan 31, 2099",
        "link": f"http://localhost/quotes/requests/{rfq.public_id}",
    }


def web_order(po="PO-88"):
    """A buyer's order placed in the portal, waiting for the office's review."""
    from portal.services import cart

    user = buyer()
    site = factories.site(user.contact.customer, name="Plant 1")
    cart.add(user, factories.product(price_cents=1000, available_quantity=50).id, 2000)
    return cart.checkout(user, site_id=site.id, customer_po=po)


def ev_order_accepted(app, client):
    """Staff accept a web order: the login that placed it is told (issue 20)."""
    from portal.services import orders

    order = web_order()
    orders.review(order, factories.staff(), True)
    return {
        "name": "Pat",
        "order_number": order.number,
        "customer_po": "PO-88",
        "link": f"http://localhost/orders/{order.public_id}",
    }


def ev_order_rejected(app, client):
    """Staff reject a web order with a reason: the login that placed it reads why."""
    from portal.services import orders

    order = web_order(po="")
    orders.review(order, factories.staff(), False, "That size is discontinued.")
    return {
        "name": "Pat",
        "order_number": order.number,
        "customer_po": "not given",
        "reason": "That size is discontinued.",
        "link": f"http://localhost/orders/{order.public_id}",
    }


def ev_invoice_issued(app, client):
    """Staff create an invoice in the back office: its billing contacts hear of it."""
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, first_name="Lee", last_name="Ray")
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    data = {
        "number": "INV-7001",
        "customer": customer.account_number,
        "site_id": "0",
        "issue_date": date.today().isoformat(),
        "due_date": date(2031, 1, 31).isoformat(),
        "currency": "USD",
        "total": "1234.56",
        "description": "Service visit",
    }
    assert client.post("/staff/invoices/new", data=data).status_code == 303
    return {
        "name": "Lee Ray",
        "customer_name": "Acme Manufacturing",
        "invoice_number": "INV-7001",
        "amount": "$1,234.56",
        "due_date": datefmt(date(2031, 1, 31)),
        "link": Starts("http://localhost/pay/link/"),
        "unsubscribe_link": Starts("http://localhost/unsubscribe/"),
    }


def ev_statement(app, client):
    """Staff choose "Email statement" on a customer's page."""
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, first_name="Lee", last_name="Ray")
    factories.invoice(customer, total_cents=123_456)
    factories.staff(email="clerk@example.com")
    staff_login(client, "clerk@example.com")
    assert client.post(f"/staff/customers/{customer.id}/statement").status_code == 303
    return {
        "name": "Lee Ray",
        "customer_name": "Acme Manufacturing",
        "closing": "$1,234.56",
        "link": Starts("http://localhost/statements/"),
        "unsubscribe_link": Starts("http://localhost/unsubscribe/"),
    }


def ev_payment_reminder(app, client):
    """The worker's pass on an invoice's due date, with reminders on."""
    from portal.services import reminders

    settings.update({"payment_reminders": True})
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, first_name="Lee", last_name="Ray")
    invoice, _ = factories.invoice(customer, number="INV-7002", total_cents=123_456)
    assert reminders.run_due(today=invoice.due_date) == 1
    return {
        "name": "Lee Ray",
        "customer_name": "Acme Manufacturing",
        "invoice_number": "INV-7002",
        "balance": "$1,234.56",
        "due_date": datefmt(invoice.due_date),
        "when": "is due today",
        "link": Starts("http://localhost/pay/link/"),
        "unsubscribe_link": Starts("http://localhost/unsubscribe/"),
    }


EVENTS = {
    "invitation": ev_invitation,
    "access_approved": ev_access_approved,
    "access_rejected": ev_access_rejected,
    "access_rejected-without-note": ev_access_rejected_without_note,
    "registration": ev_registration,
    "registration_pending": ev_registration_pending,
    "registration_request": ev_registration_request,
    "registration_exists": ev_registration_exists,
    "registration_waiting": ev_registration_waiting,
    "registration_closed": ev_registration_closed,
    "access_request_received": ev_access_request_received,
    "password_reset": ev_password_reset,
    "password_changed": ev_password_changed,
    "pay_link": ev_pay_link,
    "payment_pending": ev_payment_pending,
    "receipt": ev_receipt,
    "receipt-with-credit": ev_receipt_with_credit,
    "payment_rejected": ev_payment_rejected,
    "credit_applied": ev_credit_applied,
    "refund_recorded": ev_refund_recorded,
    "access_request_pending": ev_access_request_pending,
    "two_step_reset": ev_two_step_reset,
    "autopay_failed": ev_autopay_failed,
    "autopay_stopped": ev_autopay_stopped,
    "case_update": ev_case_update,
    "quote_published": ev_quote_published,
    "shipment_sent": ev_shipment_sent,
    "shipment_sent-without-tracking": ev_shipment_sent_without_tracking,
    "case_received": ev_case_received,
    "rfq_received": ev_rfq_received,
    "order_accepted": ev_order_accepted,
    "order_rejected": ev_order_rejected,
    "invoice_issued": ev_invoice_issued,
    "statement": ev_statement,
    "payment_reminder": ev_payment_reminder,
}


def test_every_kind_has_a_real_event_here(app):
    """Every kind the portal sends is covered by the test below."""
    assert {case.partition("-")[0] for case in EVENTS} == set(email_templates.kinds())


@pytest.mark.parametrize("case", list(EVENTS))
def test_finding5_every_documented_placeholder_is_filled_in_real_sends(app, client, mailbox, case):
    """Money issue finding 5: an override using every placeholder its page lists, sent by the
    real event, arrives over SMTP with each placeholder filled with the value it promises."""
    kind = case.partition("-")[0]
    settings.update({"contact_phone": PHONE})
    subject, body = every_placeholder(kind)
    email_templates.save(kind, subject, body, factories.staff(admin=True))
    mailbox.clear()

    expected = EVENTS[case](app, client)

    message = arrived(mailbox, kind)
    assert message["Subject"] == f"Doorstep check of {kind}"
    values = values_in(message.get_content())
    assert set(values) == set(email_templates.placeholders(kind))
    empty = sorted(name for name, value in values.items() if not value.strip())
    assert not empty, f"{kind}: rendered empty: {empty}"
    expected.update(
        portal_name="Doorstep",
        company_name=settings.get("company_name"),
        contact_email=settings.get("contact_email"),
        contact_phone=PHONE,
        base_url="http://localhost",
    )
    assert {name: values[name] for name in expected} == expected


@pytest.mark.parametrize("case", list(EVENTS))
def test_the_built_in_text_fills_every_gap_in_real_sends(app, client, mailbox, case):
    """Without an override the built-in text goes out, with the same values: no empty
    greeting, amount or invoice, and nothing left of a placeholder's braces."""
    kind = case.partition("-")[0]
    settings.update({"contact_phone": PHONE})
    EVENTS[case](app, client)
    message = arrived(mailbox, kind)
    text = message["Subject"] + "\n" + message.get_content()
    assert "{{" not in text and "}}" not in text
    assert not re.search(r"Hello ,|  for |: *\n|\(\)|\n\n\n", text), text


# --- one path: preview, test send and real send -----------------------------------------


def test_preview_test_send_and_real_send_render_the_same_text(app, client, mailbox, monkeypatch):
    """The staff preview, the "send me a test" email and the real receipt come out of one
    function: with the real receipt's values as the sample values, all three are the same."""
    boss = factories.staff(email="boss@example.com", admin=True)
    subject = "Receipt {{ receipt_number }}: {{ amount }}"
    body = "Hello {{ name }},\n{{ invoices }}\n{{ invoice_lines }}\n{{ credit }}\n{{ link }}\n"
    email_templates.save("receipt", subject, body, boss)
    invoice, code = factories.invoice(total_cents=100_000)
    guest_pays(client, invoice, code, "300.00", "test-checkout")
    real = arrived(mailbox, "receipt")

    payment = Payment.get()
    values = email_templates.values_for(
        "receipt", payment=payment, applications=list(payment.applications)
    )
    monkeypatch.setattr(email_templates, "sample_values", lambda kind: values)
    staff_login(client, "boss@example.com")
    data = {"subject": subject, "body": body}
    preview = client.post("/staff/settings/emails/receipt/preview", data=data, headers=HX)
    assert preview.status_code == 200
    shown = html.unescape(re.search(r'<pre class="mail-body">(.*?)</pre>', preview.text, re.S)[1])
    mailbox.clear()
    assert client.post("/staff/settings/emails/receipt/test", data=data).status_code == 200
    (test,) = mailbox.wait_for(1)

    assert real.get_content() == test.get_content()  # as they crossed SMTP (CRLF lines)
    stored = {m.kind: m.body_text for m in OutboxMessage.select()}
    assert stored["receipt"] == stored["test:receipt"] == shown
    assert test["Subject"] == "[Test] " + real["Subject"]
    assert real["Subject"] == f"Receipt {payment.receipt_number}: $300.00"
    assert f"{invoice.number} ($300.00)" in shown and "Hello Pat Payer," in shown


# --- templates see only their placeholders ----------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ payment.customer.contacts }}",
        "{{ payment }}",
        "{{ applications }}",
        "{{ user.email }}",
        "{{ portal.payment_instructions }}",
        "{% for c in customer.contacts %}{{ c.email }}{% endfor %}",
    ],
)
def test_a_name_the_page_does_not_document_is_refused_on_save(app, body):
    """Security: a customised template cannot reach the live objects behind an email (a
    receipt to a guest payer listing the customer's contacts); saving it is refused."""
    with pytest.raises(TemplateProblem) as problem:
        email_templates.save("receipt", "Receipt", body, factories.staff(admin=True))
    assert "Unknown placeholder" in problem.value.message
    assert Setting.select().count() == 0


def test_reading_behind_a_placeholder_is_refused(client):
    """A placeholder is a finished string: attributes and calls on it are refused (422)."""
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    for body in ("{{ name.__class__ }}", "{{ name.upper() }}", "{{ amount.split }}"):
        response = client.post(
            "/staff/settings/emails/receipt", data={"subject": "Hi", "body": body}
        )
        assert response.status_code == 422, body
        assert "Not allowed" in response.text, body
    assert Setting.select().count() == 0


def test_the_objects_a_caller_passes_never_reach_the_template(app):
    """The values a template gets are the documented strings, whatever the caller passed."""
    customer = factories.customer()
    payment = factories.payment(customer, payer_name="Lee")
    values = email_templates.values_for(
        "receipt", payment=payment, applications=[], attempt=None, items=[], customer=customer
    )
    assert set(values) == set(email_templates.placeholders("receipt"))
    assert all(isinstance(v, str) for v in values.values())


def test_an_old_override_that_no_longer_fits_falls_back_and_staff_see_why(
    app, client, mailbox, caplog
):
    """An override stored before placeholders were plain (it reads `payment.receipt_number`)
    cannot be rendered: the built-in receipt goes out, the page says what is wrong."""
    with write_txn():
        Setting.create(
            key="email_template:receipt",
            value='{"subject": "R {{ payment.receipt_number }}", "body": "{{ portal.x }}"}',
        )
    invoice, code = factories.invoice(total_cents=100_000)
    guest_pays(client, invoice, code, "300.00", "test-checkout")
    message = arrived(mailbox, "receipt")
    assert message["Subject"].startswith("Receipt R-")
    assert f"Invoice {invoice.number}: paid $300.00" in message.get_content()
    assert "override failed" in caplog.text
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    page = client.get("/staff/settings/emails/receipt")
    assert page.status_code == 200
    assert "Unknown placeholder {{ payment }}" in html.unescape(page.text)


# --- every kind: a built-in text, documented placeholders, samples ---------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_documents_samples_and_uses_only_its_placeholders(app, kind):
    """The built-in text uses only documented names; every documented name has a sample;
    the sample rendering (what the preview shows) leaves nothing empty."""
    from jinja2 import meta

    documented = set(email_templates.placeholders(kind))
    source = email_templates.file_source(kind)
    assert meta.find_undeclared_variables(app.jinja_env.parse(source)) <= documented
    assert "{%" not in source and "|" not in source  # plain placeholders only
    assert set(KINDS[kind].sample) == set(KINDS[kind].placeholders)
    assert all(KINDS[kind].sample.values())
    with app.test_request_context():
        subject, body = email_templates.compose(kind, email_templates.sample_values(kind))
    assert subject and body.strip()


def test_every_built_in_text_has_a_kind(app):
    """One source: each `templates/email/*.txt` is a kind with placeholders and a builder."""
    files = {
        name.removeprefix("email/").removesuffix(".txt")
        for name in app.jinja_env.list_templates(extensions=["txt"])
        if name.startswith("email/")
    }
    assert files == set(KINDS)


def test_new_kinds_are_listed_for_staff_with_their_placeholders(client):
    """The back office lists the money kinds and each page lists its placeholders."""
    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    listing = client.get("/staff/settings/").text
    for kind in ("payment_rejected", "credit_applied", "refund_recorded", "pay_link"):
        assert f"/staff/settings/emails/{kind}" in listing
    page = html.unescape(client.get("/staff/settings/emails/receipt").text)
    for name in ("{{ amount }}", "{{ invoices }}", "{{ credit }}", "{{ link }}"):
        assert name in page
    assert "$1,250.00" in page  # the sample rendering


def test_credit_left_comes_from_the_money_figures(app, monkeypatch):
    """credit_left is the customer's credit as `figures.credit_available` reports it."""
    from portal.services import figures

    customer = factories.customer()
    payment = factories.payment(customer, amount_cents=10_000, unapplied_cents=2_500)
    invoice, _ = factories.invoice(customer)
    seen = []
    monkeypatch.setattr(
        figures, "credit_available", lambda cid, currency=None: seen.append(cid) or 123_456
    )
    from portal.models import PaymentApplication

    application = PaymentApplication(payment=payment, invoice=invoice, amount_cents=7_500)
    values = email_templates.values_for(
        "credit_applied", customer=customer, applications=[application], name=""
    )
    assert values["credit_left"] == "$1,234.56" and seen == [customer.id]
    assert values["name"] == customer.name  # no name given: the company, never a gap
    assert values["invoices"] == f"{invoice.number} ($75.00)"
    refund = email_templates.values_for("refund_recorded", payment=payment, amount_cents=100)
    assert refund["credit_left"] == "$1,234.56" and refund["note"] == email_templates.NO_NOTE


def test_no_built_in_text_reads_the_removed_portal_object(app):
    """Guard: the removed `portal` placeholder is not silently empty in any built-in text."""
    for kind in KINDS:
        assert "portal." not in email_templates.file_source(kind), kind
