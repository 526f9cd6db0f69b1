"""Guest quick pay: the invoice number + quick-pay code lookup, its throttles and capability.

Invoice number and code together are one credential (checklist A1): every failure gets the
same answer, an unknown invoice costs the same argon2 work as a wrong code (A2), failures
are counted per typed invoice number and per client address in the database (A4, A5), and
a success grants a 15-minute capability for that one invoice (A8): a row on the server
(`QuickPayGrant`) named by a random value in the signed session, so "Done — close this
invoice" ends it at once, even for a copy of the cookie.
Throttling answers 429 for any typed number, existing or not, so it reveals nothing either.

Pay links (emailed on request, and the QR code of a printed invoice) live 7 days
(`PAY_LINK_LIFETIME`) and stop at once when staff give the invoice a new code. "Email me a
pay link" is limited per invoice number, per client address and per recipient address.
"""

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import session

from .. import tokens
from ..db import utcnow, write_txn
from ..models import AuditLog, Customer, Invoice
from ..models_quickpay import QuickPayGrant
from ..security import (
    hash_code,
    new_quick_pay_code,
    normalize_code,
    seal,
    verify_code,
)
from ..web import absolute_url
from . import audit, email_templates, throttle

log = logging.getLogger(__name__)

CAPABILITY_SECONDS = 15 * 60
# How long an emailed or printed pay link works (tokens.LIFETIMES). A payer with an older
# one asks for a new link, or types the invoice number and code.
PAY_LINK_LIFETIME = tokens.LIFETIMES["pay-link"]
# Failed lookups from all addresses together that raise an alert, per window (A5).
GLOBAL_ALERT_FAILURES = 100
GLOBAL_WINDOW = timedelta(minutes=10)


@dataclass
class Lookup:
    invoice: Invoice | None = None
    locked_until: datetime | None = None
    via_account: bool = False


def number_key(number: str) -> str:
    """The throttle key of a typed invoice number."""
    return " ".join((number or "").split()).upper()[:60]


def _find(number: str) -> Invoice | None:
    raw = (number or "").strip()
    if not raw or len(raw) > 50:
        return None
    return (
        Invoice.select(Invoice, Customer)
        .join(Customer)
        .where(Invoice.number.in_({raw, raw.upper()}))
        .first()
    )


def _scopes(number: str, ip: str, account_path: bool) -> list[tuple[str, str]]:
    scopes = [("quickpay-invoice", number_key(number)), ("guest-ip", ip)]
    if account_path:
        scopes.append(("quickpay-account", number_key(number)))
    return scopes


def lookup(number: str, secret: str, account_path: bool) -> Lookup:
    """Check an invoice number with its quick-pay code (or account number, when enabled)."""
    ip = audit.client_ip()
    scopes = _scopes(number, ip, account_path)
    for scope, key in scopes:
        until = throttle.locked_until(scope, key)
        if until:
            return Lookup(locked_until=until)
    invoice = _find(number)
    ok = verify_code(invoice.quick_pay_hash if invoice else None, normalize_code(secret))
    via_account = False
    if not ok and account_path and invoice is not None:
        typed = (secret or "").strip().upper().encode()
        via_account = ok = hmac.compare_digest(
            typed, invoice.customer.account_number.upper().encode()
        )
    if ok and not invoice.customer.portal_enabled:
        ok = False
    with write_txn():
        if ok:
            throttle.clear("quickpay-invoice", number_key(number))
            throttle.clear("quickpay-account", number_key(number))
            audit.record("quickpay.lookup_ok", invoice, via_account=via_account)
            return Lookup(invoice=invoice, via_account=via_account)
        until = None
        for scope, key in scopes:
            until = throttle.fail(scope, key) or until
        if throttle.locked_until("guest-ip", ip):
            log.warning("security alert: quick-pay lookups from %s locked after failures", ip)
            audit.record("security.alert", None, reason="quick-pay failures from one address")
        audit.record("quickpay.lookup_failed", None, number=number_key(number))
        _watch_global_failures()
    return Lookup(locked_until=until)


def _watch_global_failures() -> None:
    """Alert when failures from everywhere together pass the baseline (A5): spraying from
    many addresses trips no per-address or per-invoice lock, only this."""
    recent = (
        AuditLog.select()
        .where(
            (AuditLog.action == "quickpay.lookup_failed") & (AuditLog.at > utcnow() - GLOBAL_WINDOW)
        )
        .count()
    )
    if recent and recent % GLOBAL_ALERT_FAILURES == 0:
        log.warning("security alert: %s quick-pay lookup failures in %s", recent, GLOBAL_WINDOW)
        audit.record("security.alert", None, reason="quick-pay failures above baseline", n=recent)


def _grant_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def grant(invoice: Invoice) -> None:
    """Let this browser see and pay one invoice for 15 minutes (A8)."""
    name = secrets.token_urlsafe(24)
    now = utcnow()
    with write_txn():
        # Housekeeping: grants that ended over a day ago are of no use to anyone.
        QuickPayGrant.delete().where(QuickPayGrant.expires_at < now - timedelta(days=1)).execute()
        QuickPayGrant.create(
            grant_hash=_grant_hash(name),
            invoice=invoice.id,
            created_at=now,
            expires_at=now + timedelta(seconds=CAPABILITY_SECONDS),
        )
    session["qp"] = {
        "i": invoice.id,
        "v": invoice.quick_pay_version,
        "exp": int(time.time()) + CAPABILITY_SECONDS,
        "g": name,
    }


def granted_invoice() -> Invoice | None:
    """The invoice this browser may pay now, or None when the capability is missing, stale
    or ended ("Done")."""
    capability = session.get("qp")
    if not isinstance(capability, dict) or capability.get("exp", 0) < time.time():
        session.pop("qp", None)
        return None
    name = capability.get("g")
    invoice = (
        Invoice.select(Invoice, Customer)
        .join(Customer)
        .switch(Invoice)
        .join(QuickPayGrant, on=(QuickPayGrant.invoice == Invoice.id))
        .where(
            (Invoice.id == capability.get("i"))
            & (QuickPayGrant.grant_hash == _grant_hash(name if isinstance(name, str) else ""))
            & QuickPayGrant.ended_at.is_null()
            & (QuickPayGrant.expires_at > utcnow())
        )
        .first()
    )
    if invoice is None or invoice.quick_pay_version != capability.get("v"):
        session.pop("qp", None)
        return None
    return invoice


def forget() -> None:
    """End the guest's access to the invoice, on the server too: a copy of the session
    cookie stops working at the same moment."""
    capability = session.pop("qp", None)
    name = capability.get("g") if isinstance(capability, dict) else None
    if isinstance(name, str):
        with write_txn():
            QuickPayGrant.update(ended_at=utcnow()).where(
                (QuickPayGrant.grant_hash == _grant_hash(name)) & QuickPayGrant.ended_at.is_null()
            ).execute()


def pay_link(invoice: Invoice) -> str:
    """The signed pay link of an invoice (for emails and the QR code on the printed invoice)."""
    token = tokens.make("pay-link", {"i": invoice.id, "v": invoice.quick_pay_version})
    return absolute_url("quickpay.link", token=token)


def open_link(token: str) -> Invoice | None:
    """Check a pay link: it works while typed lookups are throttled (A6), not after a new code."""
    payload = tokens.read("pay-link", token, max_age=PAY_LINK_LIFETIME)
    if not isinstance(payload, dict):
        return None
    invoice = Invoice.get_or_none(Invoice.id == payload.get("i"))
    if invoice is None or invoice.quick_pay_version != payload.get("v"):
        return None
    if not invoice.customer.portal_enabled:
        return None
    return invoice


def send_pay_link(number: str) -> None:
    """Email the pay link to the billing address on file; the guest never chooses the address."""
    key = number_key(number)
    with write_txn():
        if throttle.locked_until("email-target", key) or throttle.locked_until(
            "guest-ip", audit.client_ip()
        ):
            return
        throttle.fail("email-target", key)
        invoice = _find(number)
        if invoice is None or invoice.status != "open" or invoice.balance_cents <= 0:
            audit.record("quickpay.link_request_unmatched", None, number=key)
            return
        customer = invoice.customer
        if not customer.email or not customer.portal_enabled:
            audit.record("quickpay.link_request_no_address", invoice)
            return
        # Per recipient too: requests for many invoices must not flood one mailbox (B3).
        recipient = "pay-link-to:" + customer.email.strip().lower()
        if throttle.locked_until("email-target", recipient):
            audit.record("quickpay.link_request_throttled", invoice)
            return
        throttle.fail("email-target", recipient)
        email_templates.queue(
            "pay_link", customer.email, invoice=invoice, customer=customer, link=pay_link(invoice)
        )
        audit.record("quickpay.link_sent", invoice)


def regenerate_code(invoice: Invoice, staff) -> str:
    """Give an invoice a new quick-pay code; old codes and pay links stop working at once."""
    code = new_quick_pay_code()
    with write_txn():
        Invoice.update(
            quick_pay_hash=hash_code(normalize_code(code)),
            quick_pay_sealed=seal(code),
            quick_pay_version=Invoice.quick_pay_version + 1,
            updated_at=utcnow(),
        ).where(Invoice.id == invoice.id).execute()
        audit.record("invoice.quick_pay_regenerated", invoice, actor=staff)
    return code
