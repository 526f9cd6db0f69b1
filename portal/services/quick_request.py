"""Guest quick requests: ask for service without signing in (setting "Quick requests").

The guest names the account with an invoice number and its quick-pay code, or with the
account number and a site code, describes the need and may add a photo. A right
identification opens a case on that account for the office and tells the account's
contacts by email; a wrong one creates nothing. Both get the same answer (A1), and every
try counts against the client address (the guest-form limits) and, when it fails, against
the invoice or account it named (A4, A11), as quick pay does.
"""

import hmac
from dataclasses import dataclass

from ..db import utcnow, write_txn
from ..models import Case, CaseMessage, Contact, Customer, Site
from ..security import normalize_code, verify_code
from ..web import absolute_url
from . import alerts, attachments, audit, cases, counters, email_templates, quickpay, throttle


@dataclass
class Identified:
    customer: Customer
    site_id: int | None


def _by_invoice(number: str, code: str) -> Identified | None:
    invoice = quickpay._find(number)
    # A missing invoice still costs one hash check (A2).
    ok = verify_code(invoice.quick_pay_hash if invoice else None, normalize_code(code))
    if not ok or not invoice.customer.portal_enabled:
        return None
    return Identified(invoice.customer, invoice.site_id)


def _by_account(account_number: str, site_code: str) -> Identified | None:
    account = (account_number or "").strip().upper()[:50]
    code = (site_code or "").strip().upper()[:50]
    if not account or not code:
        return None
    customer = Customer.get_or_none(Customer.account_number == account)
    if customer is None or not customer.portal_enabled:
        return None
    for site in Site.select().where(Site.customer == customer):
        if hmac.compare_digest(site.site_code.upper().encode(), code.encode()):
            return Identified(customer, site.id)
    return None


def submit(values: dict, files=()) -> Case | None:
    """Open the case when the identification is right; None otherwise (and when throttled).
    The caller answers the same either way."""
    ip = audit.client_ip()
    by_invoice = values.get("identify") != "account"
    named = quickpay.number_key(values.get("invoice_number" if by_invoice else "account_number"))
    scopes = [("request-ip", ip), ("guest-ip", ip)]
    failure_scope = ("quickpay-invoice" if by_invoice else "quickpay-account", named)
    for scope, key in scopes + [failure_scope]:
        if throttle.locked_until(scope, key):
            with write_txn():
                audit.record("case.quick_request_throttled", None)
            return None
    if by_invoice:
        found = _by_invoice(values.get("invoice_number", ""), values.get("quick_pay_code", ""))
    else:
        found = _by_account(values.get("account_number", ""), values.get("site_code", ""))
    if found is not None:
        attachments.store(files)
    with write_txn():
        throttle.fail("request-ip", ip)
        if found is None:
            throttle.fail("guest-ip", ip)
            throttle.fail(*failure_scope)
            audit.record(
                "case.quick_request_refused", None, by="invoice" if by_invoice else "account"
            )
            return None
        return _open(found, values, files)


def _open(found: Identified, values: dict, files) -> Case:
    now = utcnow()
    name = " ".join((values.get("name") or "").split())[:100]
    email = (values.get("email") or "").strip()[:320]
    phone = " ".join((values.get("phone") or "").split())[:50]
    description = (values.get("description") or "").strip()
    subject = cases.clean_subject(values.get("subject") or "Service request")
    case = Case.create(
        number=counters.next_number("case", "CASE"),
        customer=found.customer,
        site=found.site_id,
        subject=subject,
        category=values.get("category") if values.get("category") in cases.categories() else "",
        status="new",
        created_at=now,
        updated_at=now,
    )
    who = ", ".join(part for part in (name, email, phone) if part)
    body = f"Quick request from {who} (not signed in):\n\n{description}"
    message = CaseMessage.create(case=case, body=body, created_at=now)
    attachments.record(cases.MESSAGE, message.id, files)
    audit.record("case.quick_request", case, attachments=len(files))
    alerts.raise_("case_new", case)
    recipients = [
        c.email
        for c in Contact.select().where(Contact.customer == found.customer)
        if c.email and (found.site_id is None or c.site_id in (None, found.site_id))
    ] or ([found.customer.email] if found.customer.email else [])
    for to in dict.fromkeys(recipients):
        email_templates.queue(
            "case_update",
            to,
            name=found.customer.name,
            case_number=case.number,
            subject=subject,
            message=(
                f"A service request was sent for your account without signing in, by {who}:"
                f"\n\n{description}\n\nOur office will follow it up."
            ),
            link=absolute_url("cases.show", case_id=case.id),
        )
    return case
