"""Email texts: one path from the objects a change passes to the subject and body it sends.

Every kind of email documents its placeholders: plain strings such as `{{ amount }}` or
`{{ invoices }}`, already formatted, that a business owner reads and writes without loops
or filters. Each kind's builder makes them from the objects its callers pass (a payment and
its applications, a login); `compose` renders the text in use (staff's override, else the
built-in `templates/email/<kind>.txt`) with them. Previews and test sends use the same
function with made-up values, so what staff see is what customers get.

Templates see those strings and nothing else, never a model object: a customised receipt
cannot reach from a payment to its customer's contacts. They are rendered by a locked-down
sandboxed Jinja environment (no attribute reads, no calls, no arithmetic, no includes),
because the text comes from a person. Overrides live in the settings table under
`email_template:<kind>`.
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app
from jinja2 import StrictUndefined, TemplateError, TemplateNotFound, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from ..db import write_txn
from ..filters import datefmt, datetimefmt, money
from ..models import Setting
from ..validators import CONTROL_MESSAGE, has_control_characters
from ..web import absolute_url
from . import audit, outbox, settings

log = logging.getLogger(__name__)

KEY_PREFIX = "email_template:"
MAX_SUBJECT = 200
MAX_BODY = 20_000

COMMON = {
    "portal_name": "The portal's name",
    "company_name": "Your company's name",
    "contact_email": "Your contact email",
    "contact_phone": "Your contact phone (empty while Settings has none)",
    "base_url": "The portal's address",
}

# What a placeholder says when the event has nothing for it: never an empty gap.
NO_NAME = "there"
NO_NOTE = "We have no further details to add."
NO_REASON = "No reason was given."


# --- what each kind's placeholders say, built from the objects its callers pass ----------


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _given(**fallbacks) -> Callable[..., dict]:
    """A builder for callers that already pass each placeholder as a string (a login's
    emails pass `name`, `link`, `expires`); objects beside them (`user`) are not used."""

    def build(**objects) -> dict:
        values = dict(objects)
        for name, fallback in {"name": NO_NAME, **fallbacks}.items():
            values[name] = _text(values.get(name)) or fallback
        return values

    return build


def _payer(payment) -> str:
    return _text(payment.payer_name) or _text(payment.customer.name) or NO_NAME


def _receipt_link(payment) -> str:
    return absolute_url("statements.receipt", payment_id=payment.id)


def _amounts(rows, currency: str, nothing: str) -> str:
    """`INV-10018 ($300.00), INV-10020 ($12.50)` for applications or attempt items."""
    listed = [f"{row.invoice.number} ({money(row.amount_cents, currency)})" for row in rows]
    return ", ".join(listed) or nothing


def _discount(row, currency: str) -> str:
    if not row.discount_cents:
        return ""
    return f" + early-payment discount {money(row.discount_cents, currency)}"


def _credit(cents: int, currency: str) -> str:
    if cents > 0:
        return f"{money(cents, currency)} is kept as credit on your account."
    return "Nothing was left over."


def _credit_left(customer_id, currency: str) -> str:
    from . import figures  # imported on use: only the credit emails need it

    return money(figures.credit_available(customer_id, currency), currency)


def _receipt(payment, applications=(), **_) -> dict:
    """A receipt: what was received, what each invoice got, what is kept as credit."""
    currency = payment.currency
    lines = [
        f"Invoice {a.invoice.number}: paid {money(a.amount_cents, currency)}"
        f"{_discount(a, currency)}; balance now {money(a.invoice.balance_cents, currency)}"
        for a in applications
    ]
    return {
        "name": _payer(payment),
        "receipt_number": payment.receipt_number,
        "amount": money(payment.amount_cents, currency),
        "date": datetimefmt(payment.received_at),
        "reference": _text(payment.provider_reference) or payment.receipt_number,
        "invoices": _amounts(applications, currency, "no invoice: all of it is kept as credit"),
        "invoice_lines": "\n".join(lines) or "No invoice was paid with it.",
        "credit": _credit(payment.unapplied_cents, currency),
        "link": _receipt_link(payment),
    }


def _payment_pending(payment, items=(), **_) -> dict:
    """An offline payment announced: what to send, for which invoices, and how."""
    currency = payment.currency
    lines = [
        f"Invoice {item.invoice.number}: {money(item.amount_cents, currency)}"
        f"{_discount(item, currency)}"
        for item in items
    ]
    instructions = _text(settings.get("payment_instructions"))
    return {
        "name": _payer(payment),
        "receipt_number": payment.receipt_number,
        "amount": money(payment.amount_cents, currency),
        "invoices": _amounts(items, currency, "no invoice in particular"),
        "invoice_lines": "\n".join(lines) or "No invoice in particular.",
        "instructions": instructions
        or f"Write to {settings.get('contact_email')} for our bank details.",
        "link": _receipt_link(payment),
    }


def _payment_rejected(payment, items=(), reason="", **_) -> dict:
    """An offline payment staff rejected: what was announced and staff's reason."""
    currency = payment.currency
    return {
        "name": _payer(payment),
        "receipt_number": payment.receipt_number,
        "amount": money(payment.amount_cents, currency),
        "invoices": _amounts(items, currency, "no invoice in particular"),
        "reason": _text(reason) or NO_REASON,
        "link": _receipt_link(payment),
    }


def _credit_applied(customer, applications=(), name="", **_) -> dict:
    """Credit applied to invoices: how much, to which, and what credit is left."""
    applications = list(applications)
    currency = applications[0].invoice.currency if applications else "USD"
    return {
        "name": _text(name) or _text(customer.name) or NO_NAME,
        "amount": money(sum(a.amount_cents for a in applications), currency),
        "invoices": _amounts(applications, currency, "no invoice"),
        "credit_left": _credit_left(customer.id, currency),
        "link": absolute_url("statements.payments"),
    }


def _refund_recorded(payment, amount_cents, note="", **_) -> dict:
    """A refund out of a payment's credit: how much, staff's note, what credit is left."""
    currency = payment.currency
    return {
        "name": _payer(payment),
        "receipt_number": payment.receipt_number,
        "amount": money(amount_cents, currency),
        "note": _text(note) or NO_NOTE,
        "credit_left": _credit_left(payment.customer_id, currency),
        "link": _receipt_link(payment),
    }


def _pay_link(invoice, customer, link, **_) -> dict:
    """A pay link: the invoice, what it owes and when, and the signed link."""
    return {
        "invoice_number": invoice.number,
        "customer_name": customer.name,
        "balance": money(invoice.balance_cents, invoice.currency),
        "due_date": datefmt(invoice.due_date),
        "link": link,
    }


def _shipment(**objects) -> dict:
    """A shipment on its way; the carrier and tracking may be unknown yet."""
    values = _given(customer_po="not given", carrier="our carrier")(**objects)
    values["tracking_number"] = _text(values.get("tracking_number")) or "not available yet"
    # A carrier the portal has no tracking page for: the order's page is where to follow it.
    values["tracking_link"] = _text(values.get("tracking_link")) or values.get("link")
    return values


def _case_received(case, **_) -> dict:
    """A case a customer opened: its number, subject, what it is about, and its page."""
    if case.invoice_id:
        about = f"invoice {case.invoice.number}"
    elif case.order_id:
        about = f"order {case.order.number}"
    else:
        about = "your account"
    return {
        "name": _text(case.portal_user.display_name) or NO_NAME,
        "case_number": case.number,
        "subject": _text(case.subject) or "(no subject)",
        "about": about,
        "link": absolute_url("cases.show", case_id=case.id),
    }


def _rfq_received(rfq, **_) -> dict:
    """A request for quote a customer sent: its number, its items, the date and its page."""
    from ..filters import quantity  # imported on use: only this kind shows quantities

    items = [f"- {line.description} × {quantity(line.quantity_milli)}" for line in rfq.lines]
    return {
        "name": _text(rfq.portal_user.display_name) or NO_NAME,
        "rfq_number": rfq.number,
        "items": "\n".join(items) or "No items.",
        "needed_by": datefmt(rfq.needed_by) if rfq.needed_by else "no date given",
        "link": absolute_url("quotes.rfq", rfq_id=rfq.id),
    }


@dataclass(frozen=True)
class Kind:
    """One kind of email: when it is sent, its placeholders, made-up values and builder."""

    label: str
    purpose: str
    placeholders: dict  # name -> what it says, as shown to staff
    sample: dict  # name -> a made-up value for previews; "{base}" is the portal's address
    build: Callable[..., dict] = field(default_factory=_given)


PERSON = {"name": "The person's name"}
LOGIN_LINK = {
    "name": "The person's name",
    "customer_name": "Their company",
    "link": "The link that sets their password",
    "expires": "How long the link works",
}
LOGIN_SAMPLE = {
    "name": "Pat Buyer",
    "customer_name": "Acme Manufacturing",
    "link": "{base}/invitation/EXAMPLE",
    "expires": "7 days",
}

# Billing mail about one invoice to one billing contact (new invoice, payment reminder).
INVOICE_MAIL = {
    "name": "The contact's name",
    "customer_name": "The customer the invoice is for",
    "invoice_number": "The invoice number",
    "due_date": "The invoice's due date",
    "link": "The signed link that opens the invoice for paying (the invoice's page in the "
    "portal while quick pay is off)",
    "unsubscribe_link": "The link that stops these emails for this contact (no sign-in)",
}
INVOICE_MAIL_SAMPLE = {
    "name": "Pat Buyer",
    "customer_name": "Acme Manufacturing",
    "invoice_number": "INV-000042",
    "due_date": "Dec 31, 2026",
    "link": "{base}/pay/link/EXAMPLE",
    "unsubscribe_link": "{base}/unsubscribe/EXAMPLE",
}

KINDS = {
    "invitation": Kind(
        "Invitation",
        "Sent when staff or a company admin grants someone a portal login.",
        {**LOGIN_LINK, "name": "The invited person's name"},
        LOGIN_SAMPLE,
    ),
    "access_approved": Kind(
        "Login approved",
        "Sent when a login that was waiting for approval (a registration at a company that "
        "has an admin) is approved.",
        LOGIN_LINK,
        LOGIN_SAMPLE,
    ),
    "access_rejected": Kind(
        "Login request turned down",
        "Sent when staff turn down an access request, or a waiting registration is rejected.",
        {**PERSON, "note": f"Staff's note to them (else “{NO_NOTE}”)"},
        {"name": "Pat Buyer", "note": "Please ask your company's administrator for a login."},
        _given(note=NO_NOTE),
    ),
    "registration": Kind(
        "Registration",
        "Sent when someone registers with one of their invoices and their company has no "
        "portal admin: the link that sets their password.",
        LOGIN_LINK,
        {**LOGIN_SAMPLE, "link": "{base}/register/confirm/EXAMPLE"},
    ),
    "registration_pending": Kind(
        "Registration waiting for approval",
        "Sent to someone who registered when their company's admin approves logins first.",
        {**PERSON, "customer_name": "Their company"},
        {"name": "Pat Buyer", "customer_name": "Acme Manufacturing"},
    ),
    "registration_request": Kind(
        "Registration to approve",
        "Sent to each company admin when someone registers for their company.",
        {
            "admin_name": "The company admin's name",
            "name": "The name of the person who registered",
            "email": "Their email address",
            "customer_name": "The company",
            "link": "The page where the admin approves or rejects the login",
        },
        {
            "admin_name": "Kim Admin",
            "name": "Pat Buyer",
            "email": "pat@example.com",
            "customer_name": "Acme Manufacturing",
            "link": "{base}/company/",
        },
        _given(admin_name=NO_NAME),
    ),
    "access_request_pending": Kind(
        "Access request to approve",
        "Sent to each company admin when staff pass on someone's request for a login to "
        "their company (the request form proves nothing, unlike registration).",
        {
            "admin_name": "The company admin's name",
            "name": "The name of the person who asked",
            "email": "Their email address",
            "customer_name": "The company",
            "domain_note": "Whether their address's domain matches one of the company's "
            "contacts, as a sentence",
            "link": "The page where the admin approves or rejects the login",
        },
        {
            "admin_name": "Kim Admin",
            "name": "Pat Buyer",
            "email": "pat@example.com",
            "customer_name": "Acme Manufacturing",
            "domain_note": "Their address's domain (example.com) matches none of your "
            "company's contacts.",
            "link": "{base}/company/",
        },
        _given(admin_name=NO_NAME),
    ),
    "registration_exists": Kind(
        "Registration with an existing login",
        "Sent when someone registers with the address of a login that already exists "
        "(nothing is changed).",
        {
            **PERSON,
            "customer_name": "Their company",
            "login_link": "The sign-in page",
            "reset_link": "The forgotten-password page",
        },
        {
            "name": "Pat Buyer",
            "customer_name": "Acme Manufacturing",
            "login_link": "{base}/login",
            "reset_link": "{base}/password/forgot",
        },
    ),
    "access_request_received": Kind(
        "Access request received",
        "Sent to someone who asks for a login through the access request form: we have it "
        "and will email the decision.",
        {**PERSON, "company": "The company they named"},
        {"name": "Pat Buyer", "company": "Acme Manufacturing"},
    ),
    "registration_waiting": Kind(
        "Registration while a login waits for approval",
        "Sent when someone registers with the address of a login that is still waiting for "
        "approval (nothing is changed; they cannot sign in yet).",
        {**PERSON, "customer_name": "Their company"},
        {"name": "Pat Buyer", "customer_name": "Acme Manufacturing"},
    ),
    "registration_closed": Kind(
        "Registration for a company that does not allow it",
        "Sent when someone proves an invoice of a company whose logins are given only by "
        "invitation: how to get a login instead.",
        {**PERSON, "customer_name": "Their company", "link": "The access request form"},
        {
            "name": "Pat Buyer",
            "customer_name": "Acme Manufacturing",
            "link": "{base}/request-access/",
        },
    ),
    "password_reset": Kind(
        "Password reset",
        "Sent when someone asks to reset a forgotten password.",
        {**PERSON, "link": "The reset link", "expires": "How long it works"},
        {"name": "Pat Buyer", "link": "{base}/reset/EXAMPLE", "expires": "1 hour"},
    ),
    "password_changed": Kind(
        "Password changed",
        "Sent after a login's password was changed or reset.",
        {**PERSON, "customer_name": "Their company"},
        {"name": "Pat Buyer", "customer_name": "Acme Manufacturing"},
    ),
    "pay_link": Kind(
        "Pay link",
        "Sent to the billing address on file when someone asks for a link to pay an invoice.",
        {
            "invoice_number": "The invoice number",
            "customer_name": "The customer the invoice is for",
            "balance": "The amount due, formatted",
            "due_date": "The invoice's due date",
            "link": "The link that opens the invoice for paying",
        },
        {
            "invoice_number": "INV-000042",
            "customer_name": "Acme Manufacturing",
            "balance": "$1,250.00",
            "due_date": "Dec 31, 2026",
            "link": "{base}/pay/link/EXAMPLE",
        },
        _pay_link,
    ),
    "payment_pending": Kind(
        "Bank transfer or cheque: how to pay",
        "Sent when someone chooses to pay by bank transfer or cheque: the amount, the "
        "reference to quote and your payment instructions.",
        {
            "name": "The payer's name",
            "receipt_number": "The payment's reference (its receipt number to be)",
            "amount": "The amount to send, formatted",
            "invoices": "The invoices it is for, each with its amount",
            "invoice_lines": "One line per invoice: its number and amount",
            "instructions": "Your payment instructions (Settings → Payments)",
            "link": "A link to the payment in the portal (for customers who sign in)",
        },
        {
            "name": "Pat Buyer",
            "receipt_number": "R-000123",
            "amount": "$1,250.00",
            "invoices": "INV-000042 ($1,250.00)",
            "invoice_lines": "Invoice INV-000042: $1,250.00",
            "instructions": "Pay by bank transfer to account 12-3456-7890123.",
            "link": "{base}/statements/payments/EXAMPLE",
        },
        _payment_pending,
    ),
    "receipt": Kind(
        "Payment receipt",
        "Sent when a payment is received or confirmed.",
        {
            "name": "The payer's name",
            "receipt_number": "The receipt number",
            "amount": "The amount received, formatted",
            "date": "When it was received",
            "reference": "The payment provider's or bank's reference",
            "invoices": "The invoices it paid, each with the amount applied",
            "invoice_lines": "One line per invoice: paid, any early-payment discount, balance now",
            "credit": "What was kept as credit, as a sentence (“Nothing was left over.” "
            "when it all went to invoices)",
            "link": "A link to the receipt (for customers who sign in)",
        },
        {
            "name": "Pat Buyer",
            "receipt_number": "R-000123",
            "amount": "$1,250.00",
            "date": "Nov 23, 2026 09:05 EST",
            "reference": "BANK-7781",
            "invoices": "INV-000042 ($1,250.00)",
            "invoice_lines": "Invoice INV-000042: paid $1,250.00; balance now $0.00",
            "credit": "Nothing was left over.",
            "link": "{base}/statements/payments/EXAMPLE",
        },
        _receipt,
    ),
    "payment_rejected": Kind(
        "Payment rejected",
        "Sent when staff reject a bank transfer or cheque that did not arrive as announced.",
        {
            "name": "The payer's name",
            "receipt_number": "The payment's reference",
            "amount": "The amount announced, formatted",
            "invoices": "The invoices it was for, each with its amount",
            "reason": f"Staff's reason (else “{NO_REASON}”)",
            "link": "A link to the payment in the portal (for customers who sign in)",
        },
        {
            "name": "Pat Buyer",
            "receipt_number": "R-000123",
            "amount": "$1,250.00",
            "invoices": "INV-000042 ($1,250.00)",
            "reason": "No transfer with this reference reached our account.",
            "link": "{base}/statements/payments/EXAMPLE",
        },
        _payment_rejected,
    ),
    "credit_applied": Kind(
        "Credit applied",
        "Sent when credit on a customer's account is applied to their invoices.",
        {
            "name": "The person's name",
            "amount": "The credit applied, formatted",
            "invoices": "The invoices it paid, each with the amount applied",
            "credit_left": "The credit still on the account, formatted",
            "link": "A link to the payment history",
        },
        {
            "name": "Pat Buyer",
            "amount": "$300.00",
            "invoices": "INV-000042 ($300.00)",
            "credit_left": "$45.00",
            "link": "{base}/statements/payments",
        },
        _credit_applied,
    ),
    "refund_recorded": Kind(
        "Refund recorded",
        "Sent when staff record a refund of a payment's credit.",
        {
            "name": "The payer's name",
            "receipt_number": "The receipt of the payment refunded",
            "amount": "The amount refunded, formatted",
            "note": f"Staff's note (else “{NO_NOTE}”)",
            "credit_left": "The credit still on the account, formatted",
            "link": "A link to the receipt (for customers who sign in)",
        },
        {
            "name": "Pat Buyer",
            "receipt_number": "R-000123",
            "amount": "$45.00",
            "note": "Refunded to the card it was paid with.",
            "credit_left": "$0.00",
            "link": "{base}/statements/payments/EXAMPLE",
        },
        _refund_recorded,
    ),
    "two_step_reset": Kind(
        "Two-step sign-in reset",
        "Sent when staff reset a customer login's two-step sign-in (a lost phone).",
        PERSON,
        {"name": "Pat Buyer"},
    ),
    "autopay_failed": Kind(
        "Autopay did not charge an invoice",
        "Sent to the company's admins when autopay's charge of an invoice fails (with when it "
        "will try again) or when an invoice is over the autopay limit.",
        {
            "name": "The admin's name",
            "invoice": "The invoice's number",
            "amount": "The amount autopay meant to charge, formatted",
            "card": "The saved card, e.g. Visa •••• 4242",
            "reason": "Why it was not charged (the card's answer, or the limit)",
            "next_step": "When autopay tries again, or that the customer should pay it",
            "link": "A link to the invoice in the portal",
        },
        {
            "name": "Pat Buyer",
            "invoice": "INV-000042",
            "amount": "$1,250.00",
            "card": "Visa •••• 4242",
            "reason": "The card was declined: insufficient funds.",
            "next_step": "We will try again on 08 Dec 2026.",
            "link": "{base}/invoices/EXAMPLE",
        },
    ),
    "autopay_stopped": Kind(
        "Autopay turned off",
        "Sent to the company's admins when autopay turns itself off (charges failed in a row, "
        "or the card it used was removed).",
        {
            "name": "The admin's name",
            "reason": "Why autopay stopped",
            "link": "A link to the autopay page, to turn it on again",
        },
        {
            "name": "Pat Buyer",
            "reason": "3 charges failed in a row. The last: the card was declined.",
            "link": "{base}/company/autopay/",
        },
    ),
    "case_update": Kind(
        "Support case update",
        "Sent to the customer when staff reply to or change a support case.",
        {
            "name": "The customer's name",
            "case_number": "The case number",
            "subject": "The case subject",
            "message": "The reply or change",
            "link": "A link to the case",
        },
        {
            "name": "Pat Buyer",
            "case_number": "CS-000017",
            "subject": "Damaged delivery",
            "message": "We have sent a replacement today.",
            "link": "{base}/cases/17",
        },
        _given(message="The case was updated."),
    ),
    "quote_published": Kind(
        "Quote published",
        "Sent when a quote is ready for the customer to accept or decline.",
        {
            "name": "The customer's name",
            "quote_number": "The quote number",
            "total": "The quote total, formatted",
            "valid_until": "The last day it can be accepted",
            "link": "A link to the quote",
        },
        {
            "name": "Pat Buyer",
            "quote_number": "Q-000008",
            "total": "$4,980.00",
            "valid_until": "Dec 31, 2026",
            "link": "{base}/quotes/8",
        },
    ),
    "shipment_sent": Kind(
        "Order shipped",
        "Sent when an imported shipment of a customer's order is on its way (shipped in the "
        "last week and not yet delivered: importing old shipments sends nothing).",
        {
            "name": "The customer's name",
            "order_number": "The order number",
            "customer_po": "The customer's PO number (else “not given”)",
            "shipment_number": "The shipment number",
            "carrier": "The carrier (else “our carrier”)",
            "tracking_number": "The tracking number (else “not available yet”)",
            "tracking_link": "The carrier's tracking page (else the order's page)",
            "link": "A link to the order",
        },
        {
            "name": "Pat Buyer",
            "order_number": "SO-52017",
            "customer_po": "PO-4471",
            "shipment_number": "SH-88120",
            "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "tracking_link": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
            "link": "{base}/orders/example",
        },
        _shipment,
    ),
    "order_accepted": Kind(
        "Order accepted",
        "Sent to the login that placed an order in the portal when the office accepts it.",
        {
            "name": "The customer's name",
            "order_number": "The order number",
            "customer_po": "The customer's PO number (else “not given”)",
            "link": "A link to the order",
        },
        {
            "name": "Pat Buyer",
            "order_number": "W-000012",
            "customer_po": "PO-4471",
            "link": "{base}/orders/example",
        },
        _given(customer_po="not given"),
    ),
    "order_rejected": Kind(
        "Order not accepted",
        "Sent to the login that placed an order in the portal when the office rejects it, "
        "with the reason staff gave.",
        {
            "name": "The customer's name",
            "order_number": "The order number",
            "customer_po": "The customer's PO number (else “not given”)",
            "reason": "Why the order was not accepted",
            "link": "A link to the order",
        },
        {
            "name": "Pat Buyer",
            "order_number": "W-000012",
            "customer_po": "PO-4471",
            "reason": "That size is discontinued; please call us for the replacement.",
            "link": "{base}/orders/example",
        },
        _given(customer_po="not given", reason=NO_REASON),
    ),
    "case_received": Kind(
        "Support case received",
        "Sent to the customer who opens a case (also “Question this invoice”): we have it, "
        "with the link to follow it. A double click that opens one case sends one.",
        {
            "name": "The customer's name",
            "case_number": "The case number",
            "subject": "The case subject",
            "about": "What it is about: “invoice INV-…”, “order SO-…” or “your account”",
            "link": "A link to the case",
        },
        {
            "name": "Pat Buyer",
            "case_number": "CASE-000017",
            "subject": "Damaged delivery",
            "about": "invoice INV-000042",
            "link": "{base}/cases/EXAMPLE",
        },
        _case_received,
    ),
    "rfq_received": Kind(
        "Request for quote received",
        "Sent to the customer who sends a request for quote: we have it, with the link to "
        "follow it.",
        {
            "name": "The customer's name",
            "rfq_number": "The request's number",
            "items": "One line per item asked for, with its quantity",
            "needed_by": "The date they need it by (else “no date given”)",
            "link": "A link to the request",
        },
        {
            "name": "Pat Buyer",
            "rfq_number": "RFQ-000008",
            "items": "- Widget × 10\n- Bracket, stainless × 4",
            "needed_by": "Dec 31, 2026",
            "link": "{base}/quotes/requests/EXAMPLE",
        },
        _rfq_received,
    ),
    "invoice_issued": Kind(
        "New invoice",
        "Sent to the customer's billing contacts who want it when staff create an invoice in "
        "the back office (imported invoices send nothing: the books send those).",
        {**INVOICE_MAIL, "amount": "The invoice total, formatted"},
        {**INVOICE_MAIL_SAMPLE, "amount": "$1,250.00"},
    ),
    "payment_reminder": Kind(
        "Payment reminder",
        "Sent by the worker on the days of the reminder schedule (Settings) to the billing "
        "contacts who want it, about each open invoice not covered by autopay or pending "
        "payments; each step once per invoice.",
        {
            **INVOICE_MAIL,
            "balance": "What is left to pay, formatted (the amount due less payments on their way)",
            "when": "Where the invoice stands: “is due in 3 days”, “is due today”, "
            "“is overdue by 7 days”",
        },
        {**INVOICE_MAIL_SAMPLE, "balance": "$1,250.00", "when": "is overdue by 7 days"},
    ),
    "statement": Kind(
        "Statement",
        "Sent each month on the statement day (Settings) to the billing contacts who want it "
        "of customers with something open, and when staff choose “Email statement”.",
        {
            "name": "The contact's name",
            "customer_name": "The customer",
            "start": "The statement's first day",
            "end": "The statement's last day",
            "opening": "The opening balance, formatted",
            "closing": "The closing balance, formatted",
            "lines": "One line per invoice, payment or credit: date, reference, what, amount, "
            "running balance",
            "aging": "What is open today by age, one line per group",
            "open_invoices": "The open invoices, each with its signed pay link",
            "link": "A link to the statement in the portal",
            "unsubscribe_link": "The link that stops these emails for this contact (no sign-in)",
        },
        {
            "name": "Pat Buyer",
            "customer_name": "Acme Manufacturing",
            "start": "Nov 1, 2026",
            "end": "Nov 30, 2026",
            "opening": "$500.00",
            "closing": "$1,250.00",
            "lines": "Nov 3, 2026 · INV-000042 · Invoice · charged $1,250.00 · balance "
            "$1,750.00\nNov 9, 2026 · R-000123 · Payment — thank you · received $500.00 · "
            "balance $1,250.00",
            "aging": "Current: $1,250.00\n1–30 days: $0.00",
            "open_invoices": "Pay online\nINV-000042, $1,250.00 due Dec 3, 2026\n"
            "{base}/pay/link/EXAMPLE",
            "link": "{base}/statements/",
            "unsubscribe_link": "{base}/unsubscribe/EXAMPLE",
        },
    ),
}


class MailSandbox(SandboxedEnvironment):
    """A sandbox that only substitutes values: plain placeholders and a few text filters."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def is_safe_callable(self, obj) -> bool:
        # Placeholders never need a call; filters are applied without one.
        return False

    def is_safe_attribute(self, obj, attr, value) -> bool:
        # Every placeholder is a finished string: there is nothing behind it to read.
        return False

    def unsafe_undefined(self, obj, attribute):
        # Jinja would render an empty string; staff should hear why their text is refused.
        raise SecurityError(f"{attribute!r} cannot be read in an email template")

    def call_binop(self, context, operator, left, right):
        raise SecurityError("calculations are not available in email templates")


SAFE_FILTERS = ("default", "upper", "lower", "title", "capitalize", "trim", "truncate", "replace")


def _environment() -> MailSandbox:
    env = current_app.extensions.get("mail_sandbox")
    if env is None:
        # StrictUndefined: a name no placeholder fills (an old override's `{{ payment }}`)
        # fails loudly instead of leaving a gap in a customer's email.
        env = MailSandbox(autoescape=False, keep_trailing_newline=True, undefined=StrictUndefined)
        env.globals.clear()  # no range(), lipsum(), cycler(): nothing callable
        env.filters = {name: env.filters[name] for name in SAFE_FILTERS}
        current_app.extensions["mail_sandbox"] = env
    return env


class TemplateProblem(ValueError):
    """A template staff wrote that cannot be used; `field` is subject or body."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


# --- which kinds exist and what they say by default ------------------------------------


def kinds() -> list[str]:
    """The kinds of email the portal sends, in the order staff see them."""
    return list(KINDS)


def label(kind: str) -> str:
    """A person-readable name for a kind."""
    return KINDS[kind].label


def purpose(kind: str) -> str:
    """When this email is sent."""
    return KINDS[kind].purpose


def file_source(kind: str) -> str:
    """The raw text of the built-in `templates/email/<kind>.txt` (its first line the subject)."""
    env = current_app.jinja_env
    try:
        source, _, _ = env.loader.get_source(env, f"email/{kind}.txt")
    except TemplateNotFound:
        raise LookupError(f"no built-in text for the email kind {kind!r}") from None
    return source


def default(kind: str) -> tuple[str, str]:
    """The (subject, body) the portal sends when nobody has edited this kind."""
    first, _, body = file_source(kind).partition("\n")
    return first.removeprefix("Subject:").strip(), body.lstrip("\n")


def placeholders(kind: str) -> dict:
    """{name: description} of what a template of this kind may use: all it is given."""
    return {**KINDS[kind].placeholders, **COMMON}


def stored(kind: str) -> dict | None:
    """The stored override {subject, body} for a kind, or None."""
    row = Setting.get_or_none(Setting.key == KEY_PREFIX + kind)
    return json.loads(row.value) if row else None


def customized_kinds() -> set[str]:
    """Kinds that have a stored override."""
    rows = Setting.select(Setting.key).where(Setting.key.startswith(KEY_PREFIX))
    return {row.key.removeprefix(KEY_PREFIX) for row in rows}


def current(kind: str) -> tuple[str, str]:
    """The (subject, body) in use: the override when there is one, else the default."""
    override = stored(kind)
    if override:
        return override["subject"], override["body"]
    return default(kind)


# --- the values a template is given -----------------------------------------------------


def common_values() -> dict:
    """Values every template can use, whatever the email is about."""
    values = settings.load()
    return {
        "portal_name": values["portal_name"],
        "company_name": values["company_name"],
        "contact_email": values["contact_email"],
        "contact_phone": values["contact_phone"],
        "base_url": current_app.config["BASE_URL"],
    }


def queue(kind: str, to: str, *, headers: dict | None = None, **objects):
    """Queue the `kind` email about these objects (a payment and its applications, a login),
    in staff's words or the built-in ones; call inside the transaction of the change.
    `headers` are extra headers for the outbox (`outbox.EXTRA_HEADERS`): `notices.headers`
    gives a login's one-click unsubscribe.

    The subject is made from stored values (a case's subject, a customer's name): it is
    cleaned, never refused, so one odd value cannot fail the change that sends it. This module
    composes and the outbox delivers: the outbox never imports this module (no circle).
    """
    values = values_for(kind, **objects)
    subject, body = compose(kind, values)
    payment = objects.get("payment")
    about = f"payment-{payment.id}" if getattr(payment, "id", None) else ""
    try:
        outbox.check_recipient(to)
    except ValueError as exc:
        # A stored address that is not one clean address: the change still happens, and
        # staff see this email as failed instead of a customer seeing an error page.
        return outbox.record_unsendable(to, subject, body, kind, about, f"Not sent: {exc}")
    subject = outbox.clean_header(subject)
    return outbox.queue(
        to,
        subject,
        body,
        body_html=html_body(subject, body),
        kind=kind,
        about=about,
        headers=headers,
    )


# A web address in a text: http(s) only (never `javascript:`), up to a space or a bracket.
LINK = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)


def _link_end(url: str) -> str:
    """The address without the punctuation that ends its sentence ("see https://x/.")."""
    while url and (
        url[-1] in ".,;:!?*_'\"" or (url[-1] == ")" and url.count(")") > url.count("("))
    ):
        url = url[:-1]
    return url


def _segments(line: str) -> list[tuple[str, str | None]]:
    """A line as (text, link) pieces: each web address becomes a link to itself."""
    pieces, at = [], 0
    for match in LINK.finditer(line):
        url = _link_end(match.group(0))
        if not url.partition("://")[2]:
            continue
        start = match.start()
        if start > at:
            pieces.append((line[at:start], None))
        pieces.append((url, url))
        at = start + len(url)
    if at < len(line):
        pieces.append((line[at:], None))
    return pieces


def html_body(subject: str, text: str) -> str:
    """The HTML part of an email: the composed text (staff's or the built-in, the same words
    as the plain part) in the one layout `templates/email/_layout.html`, under the business's
    name. Paragraphs stay paragraphs, web addresses become links to themselves (absolute,
    http and https only), and every character of the text is escaped by Jinja's autoescape:
    what a customer or staff typed (a case subject, a note) can never add markup."""
    values = settings.load()
    paragraphs = [
        [_segments(line) for line in block.split("\n")]
        for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
        if block.strip()
    ]
    template = current_app.jinja_env.get_template("email/_layout.html")
    return template.render(
        lang="en",
        subject=subject,
        company_name=values["company_name"],
        base_url=current_app.config["BASE_URL"].rstrip("/") + "/",
        paragraphs=paragraphs,
    )


def values_for(kind: str, **objects) -> dict:
    """The placeholders of `kind` filled from the objects a real send passes: exactly the
    documented names, each a string (a missing one is a bug in the caller: KeyError)."""
    built = KINDS[kind].build(**objects)
    values = {name: _text(built[name]) for name in KINDS[kind].placeholders}
    values.update(common_values())
    return values


def sample_values(kind: str) -> dict:
    """Made-up values for previews and test sends (never real customer data)."""
    base = current_app.config["BASE_URL"].rstrip("/")
    values = {name: value.replace("{base}", base) for name, value in KINDS[kind].sample.items()}
    values.update(common_values())
    return values


# --- rendering --------------------------------------------------------------------------


def render(subject: str, body: str, values: dict) -> tuple[str, str]:
    """Render a subject and body in the sandbox; raises TemplateProblem naming the field."""
    env = _environment()
    out = []
    for field_name, source in (("subject", subject), ("body", body)):
        try:
            out.append(env.from_string(source).render(values))
        except TemplateSyntaxError as exc:
            raise TemplateProblem(field_name, f"Line {exc.lineno}: {exc.message}") from exc
        except SecurityError as exc:
            raise TemplateProblem(field_name, f"Not allowed in an email template: {exc}") from exc
        except TemplateError as exc:
            raise TemplateProblem(field_name, f"This template cannot be rendered: {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise TemplateProblem(
                field_name, f"A placeholder could not be filled in: {exc}"
            ) from exc
    # A subject is one header line: values with line breaks are folded into spaces (B9).
    return " ".join(out[0].split()), out[1]


def compose(kind: str, values: dict, draft: tuple[str, str] | None = None) -> tuple[str, str]:
    """The (subject, body) of one email of `kind` with these placeholder values: the one
    rendering path of real sends (`values_for`), previews and test sends (`sample_values`).

    `draft` is a text as staff typed it (a preview): its problems raise TemplateProblem.
    Otherwise the text in use is rendered: the stored override, or the built-in text. A
    broken override must never stop the change that sends the email (an invitation, a
    receipt): it is logged and the built-in text goes out instead.
    """
    if draft is not None:
        return render(*draft, values)
    override = stored(kind)
    if override:
        try:
            return render(override["subject"], override["body"], values)
        except TemplateProblem as exc:
            log.warning("email template %s override failed (%s); using the built-in one", kind, exc)
    return render(*default(kind), values)


# --- staff actions ----------------------------------------------------------------------


def validate(kind: str, subject: str, body: str) -> tuple[str, str]:
    """Check a template as staff wrote it: its sample rendering, or TemplateProblem."""
    subject, body = (subject or "").strip(), (body or "").replace("\r\n", "\n")
    if not subject:
        raise TemplateProblem("subject", "Write a subject line.")
    if "\n" in subject or "\r" in subject:
        raise TemplateProblem("subject", "The subject must be a single line.")
    if has_control_characters(subject):
        raise TemplateProblem("subject", CONTROL_MESSAGE)
    if len(subject) > MAX_SUBJECT:
        raise TemplateProblem("subject", f"Keep the subject under {MAX_SUBJECT} characters.")
    if not body.strip():
        raise TemplateProblem("body", "Write the message.")
    if len(body) > MAX_BODY:
        raise TemplateProblem("body", f"Keep the message under {MAX_BODY:,} characters.")
    allowed = set(placeholders(kind))
    env = _environment()
    for field_name, source in (("subject", subject), ("body", body)):
        try:
            used = meta.find_undeclared_variables(env.parse(source))
        except TemplateSyntaxError as exc:
            raise TemplateProblem(field_name, f"Line {exc.lineno}: {exc.message}") from exc
        unknown = sorted(used - allowed)
        if unknown:
            names = ", ".join("{{ " + n + " }}" for n in unknown)
            raise TemplateProblem(
                field_name, f"Unknown placeholder {names}. Use one of those listed beside the form."
            )
    return compose(kind, sample_values(kind), draft=(subject, body))


def save(kind: str, subject: str, body: str, by) -> bool:
    """Store an override (validated); audited old -> new. Returns False when nothing changed."""
    validate(kind, subject, body)
    subject, body = subject.strip(), body.replace("\r\n", "\n")
    old_subject, old_body = current(kind)
    if (old_subject, old_body) == (subject, body):
        return False
    value = json.dumps({"subject": subject, "body": body})
    with write_txn():
        Setting.insert(key=KEY_PREFIX + kind, value=value).on_conflict(
            conflict_target=[Setting.key], update={Setting.value: value}
        ).execute()
        audit.record(
            "email_template.changed",
            Setting(key=KEY_PREFIX + kind),
            actor=by,
            kind=kind,
            old={"subject": old_subject, "body": old_body},
            new={"subject": subject, "body": body},
        )
    return True


def reset(kind: str, by) -> bool:
    """Drop the override so the built-in template is used again; audited."""
    old = stored(kind)
    if old is None:
        return False
    with write_txn():
        Setting.delete().where(Setting.key == KEY_PREFIX + kind).execute()
        audit.record(
            "email_template.reset", Setting(key=KEY_PREFIX + kind), actor=by, kind=kind, old=old
        )
    return True


def send_test(kind: str, subject: str, body: str, by) -> None:
    """Queue the template as written, with sample values, to the staff member via the outbox."""
    rendered_subject, rendered_body = validate(kind, subject, body)
    with write_txn():
        outbox.queue(
            by.email,
            f"[Test] {rendered_subject}",
            rendered_body,
            body_html=html_body(f"[Test] {rendered_subject}", rendered_body),
            kind=f"test:{kind}",
        )
        audit.record(
            "email_template.test_sent", Setting(key=KEY_PREFIX + kind), actor=by, kind=kind
        )
