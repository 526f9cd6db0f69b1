"""Office alerts: staff hear about what customers (and payment providers) did, and
customers get an acknowledgement of what they sent.

An alert is raised inside the transaction of the change it is about, by one call:
`alerts.raise_(kind, obj)` (a case, a case message, an RFQ, a quote, an access request, a
waiting login, a payment). Each active staff login gets it the way it chose for that kind
(`AlertChoice`, edited on the back office's "My alerts" page):

- `now`: an email queued to the outbox in that same transaction (a rolled-back change
  alerts nobody);
- `digest`: an `AlertEntry` kept for the login's daily summary, which the worker sends
  once a day (`send_digests`, in `jobs.MONEY_TASKS`) after `DIGEST_HOUR` in the business's
  time zone, carrying every entry from before that day's midnight;
- `none`: nothing.

Without a choice a login gets the default (`default_delivery`): admins every kind at once;
agents the customer conversations at once (cases, replies, invoice questions, RFQs, quote
decisions) and the rest (access requests, registrations, payments) in the daily summary.

A digest is sent at most once per login and business day: the unique (login, day)
`AlertDigest` row is written in the transaction that claims the entries and queues the
email, so a second pass or a second worker at the same moment finds it and sends nothing.

Alerts are the office's own mail: fixed words, not staff-editable templates. What a
customer gets back (`acknowledge`) is: the `case_received` and `rfq_received` kinds of
`email_templates`, naming the business, with the link to follow what they sent.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time

from peewee import IntegrityError

from .. import clock
from ..db import db, utcnow, write_txn
from ..filters import datefmt, datetimefmt, money
from ..models import (
    AccessRequest,
    AutopayCharge,
    Case,
    CaseMessage,
    Payment,
    PortalUser,
    Quote,
    Rfq,
    StaffUser,
)
from ..models_alerts import AlertChoice, AlertDigest, AlertEntry
from ..web import absolute_url
from . import audit, email_templates, outbox, settings


@dataclass(frozen=True)
class AlertKind:
    label: str  # on the choices page, in emails and digests
    help: str


KINDS = {
    "case_new": AlertKind(
        "New support cases", "A customer opens a case (a guest's quick request too)."
    ),
    "case_reply": AlertKind("Customer replies", "A customer writes on one of their cases."),
    "invoice_question": AlertKind(
        "Questions about an invoice", "A customer asks about an invoice (“Question this invoice”)."
    ),
    "rfq_submitted": AlertKind("Requests for quote", "A customer sends a request for quote."),
    "quote_decided": AlertKind(
        "Quotes accepted or declined", "A customer accepts or declines a quote you sent."
    ),
    "access_request": AlertKind(
        "Access requests", "Someone asks for a portal login with the access request form."
    ),
    "registration_waiting": AlertKind(
        "Registrations waiting for approval",
        "Someone registers with an invoice and their login waits for approval.",
    ),
    "payment_to_confirm": AlertKind(
        "Payments to confirm", "A payer announces a bank transfer or cheque for you to confirm."
    ),
    "payment_problem": AlertKind(
        "Payments failed or disputed",
        "A bank debit or an autopay charge fails, or a payment is disputed or refunded at the "
        "payment provider.",
    ),
}

DELIVERIES = {
    "now": "Email at once",
    "digest": "In the daily summary",
    "none": "Not at all",
}

# Agents hear at once about the customer conversations they answer; the rest waits for
# their daily summary. Admins hear about everything at once.
AGENT_AT_ONCE = frozenset(
    {"case_new", "case_reply", "invoice_question", "rfq_submitted", "quote_decided"}
)

# The daily summary goes out from this hour of the business's day, so it is in the inbox
# when the office opens rather than at midnight.
DIGEST_HOUR = 7

MAX_DETAIL = 1_000


def default_delivery(staff, kind: str) -> str:
    """How a login gets `kind` until it chooses: see the module's docstring."""
    return "now" if staff.is_admin or kind in AGENT_AT_ONCE else "digest"


def choices(staff) -> dict[str, str]:
    """Every alert kind and how this login gets it (its choice, else its default)."""
    chosen = {
        row.kind: row.delivery
        for row in AlertChoice.select().where(AlertChoice.staff_user == staff.id)
    }
    return {kind: chosen.get(kind) or default_delivery(staff, kind) for kind in KINDS}


def save_choices(staff, wanted: dict[str, str]) -> list[str]:
    """Store the login's choices (kind -> delivery); returns the kinds that changed (audited)."""
    for kind, delivery in wanted.items():
        if kind not in KINDS or delivery not in DELIVERIES:
            raise ValueError(f"not an alert choice: {kind}={delivery}")
    with write_txn():
        old = choices(staff)
        changed = [kind for kind, delivery in wanted.items() if old[kind] != delivery]
        now = utcnow()
        for kind in changed:
            updated = (
                AlertChoice.update(delivery=wanted[kind], changed_at=now)
                .where((AlertChoice.staff_user == staff.id) & (AlertChoice.kind == kind))
                .execute()
            )
            if not updated:
                AlertChoice.create(
                    staff_user=staff.id, kind=kind, delivery=wanted[kind], changed_at=now
                )
        if changed:
            audit.record(
                "alerts.choices_changed",
                staff,
                actor=staff,
                **{kind: f"{old[kind]} -> {wanted[kind]}" for kind in changed},
            )
    return changed


# --- what an alert says about its object ---------------------------------------------------


def _clip(text: str, limit: int = MAX_DETAIL) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_message(case) -> str:
    first = case.messages.order_by(CaseMessage.id).first()
    return _clip(first.body) if first else ""


def _case_new(case):
    return (
        f"New case {case.number} from {case.customer.name}: {case.subject}",
        _first_message(case),
        absolute_url("staff_cases.show", case_id=case.id),
    )


def _invoice_question(case):
    _, first, link = _case_new(case)
    return (
        f"Question about invoice {case.invoice.number} from {case.customer.name} "
        f"(case {case.number}): {case.subject}",
        first,
        link,
    )


def _case_reply(message):
    case = message.case
    return (
        f"{case.customer.name} replied on case {case.number}: {case.subject}",
        _clip(message.body),
        absolute_url("staff_cases.show", case_id=case.id),
    )


def _rfq_submitted(rfq):
    lines = list(rfq.lines)
    listed = [f"- {line.description}" for line in lines[:10]]
    if len(lines) > 10:
        listed.append(f"- and {len(lines) - 10} more")
    needed = f"Needed by {datefmt(rfq.needed_by)}." if rfq.needed_by else ""
    detail = "\n".join(part for part in ("\n".join(listed), needed, _clip(rfq.notes)) if part)
    count = f"{len(lines)} item{'s' if len(lines) != 1 else ''}"
    return (
        f"Request for quote {rfq.number} from {rfq.customer.name} ({count})",
        detail,
        absolute_url("staff_quotes.rfq", rfq_id=rfq.id),
    )


def _quote_decided(quote):
    quote = Quote.get_by_id(quote.id)  # the decision just written
    verb = "accepted" if quote.status == "accepted" else "declined"
    detail = []
    if quote.customer_po:
        detail.append(f"Their PO number: {quote.customer_po}")
    if quote.decline_reason:
        detail.append(f"Reason: {_clip(quote.decline_reason)}")
    return (
        f"Quote {quote.number} {verb} by {quote.customer.name} "
        f"({money(quote.total_cents, quote.currency)})",
        "\n".join(detail),
        absolute_url("staff_quotes.show", quote_id=quote.id),
    )


def _access_request(row):
    account = f"Account number given: {row.account_number}" if row.account_number else ""
    return (
        f"Access request from {row.name} <{row.email}> for {row.company}",
        "\n".join(part for part in (account, _clip(row.message)) if part),
        absolute_url("staff_queue.index"),
    )


def _registration_waiting(user):
    contact = user.contact
    return (
        f"{contact.full_name} <{contact.email}> registered for {contact.customer.name}; "
        "the login waits for approval",
        "Their company's administrator is asked too; either of you can approve it.",
        absolute_url("staff_queue.index"),
    )


def _payment_to_confirm(payment):
    items = [
        f"- Invoice {item.invoice.number}: {money(item.amount_cents, payment.currency)}"
        for item in (payment.attempt.items if payment.attempt_id else [])
    ]
    return (
        f"{payment.payer_name or payment.customer.name} announced a bank transfer or cheque of "
        f"{money(payment.amount_cents, payment.currency)} ({payment.receipt_number}) "
        f"for {payment.customer.name}",
        "\n".join(items),
        absolute_url("staff_payments.show", payment_id=payment.id),
    )


def _payment_problem(payment):
    payment = Payment.get_by_id(payment.id)  # the status and flag just written
    what = payment.flag_reason or "The payment was not received."
    return (
        f"Payment {payment.receipt_number} of {money(payment.amount_cents, payment.currency)} "
        f"from {payment.customer.name}: {what}",
        "",
        absolute_url("staff_payments.show", payment_id=payment.id),
    )


def _autopay_failed(charge):
    invoice = charge.invoice
    return (
        f"Autopay could not charge invoice {invoice.number} of {invoice.customer.name} "
        f"({money(charge.amount_cents, invoice.currency)}): {charge.last_error}",
        "The company's admins were emailed; autopay tries again or asks them to pay it.",
        absolute_url("staff_autopay.index"),
    )


# What each kind of alert is about, and how it says it.
DESCRIBE = {
    "case_new": {Case: _case_new},
    "case_reply": {CaseMessage: _case_reply},
    "invoice_question": {Case: _invoice_question},
    "rfq_submitted": {Rfq: _rfq_submitted},
    "quote_decided": {Quote: _quote_decided},
    "access_request": {AccessRequest: _access_request},
    "registration_waiting": {PortalUser: _registration_waiting},
    "payment_to_confirm": {Payment: _payment_to_confirm},
    "payment_problem": {Payment: _payment_problem, AutopayCharge: _autopay_failed},
}


# --- raising an alert ----------------------------------------------------------------------


def _alerts_link() -> str:
    return absolute_url("staff_alerts.edit")


def _subject(text: str) -> str:
    subject = f"[{settings.get('company_name')}] {text}"
    subject = outbox.clean_header(subject)
    return subject if len(subject) <= 200 else subject[:199].rstrip() + "…"


def raise_(kind: str, obj, text: str | None = None, link: str | None = None, office_copy=False):
    """Tell every active staff login about `obj` as it chose for `kind`; call inside the
    transaction of the change. `text` and `link` replace the alert's own words and link.
    `office_copy`: the change already emailed the business's contact address (a quote's
    decision), so a login with that same address is not emailed it again."""
    if kind not in KINDS:
        raise KeyError(kind)
    if db.transaction_depth() == 0:
        raise RuntimeError("alerts.raise_ belongs inside the transaction of the change")
    describe = DESCRIBE[kind].get(type(obj))
    if describe is None:
        raise TypeError(f"a {kind} alert is not about {obj!r}")
    headline, detail, own_link = describe(obj)
    headline, link = " ".join((text or headline).split()), link or own_link
    skip = (settings.get("contact_email") or "").lower() if office_copy else None
    now = utcnow()
    staff = StaffUser.select().where(StaffUser.active == True).order_by(StaffUser.id)  # noqa: E712
    for person in list(staff):
        delivery = choices(person)[kind]
        if delivery == "digest":
            AlertEntry.create(
                staff_user=person, kind=kind, text=headline, link=link, created_at=now
            )
        elif delivery == "now" and person.email.lower() != skip:
            body = [headline, ""]
            if detail:
                body += [detail, ""]
            body += [
                f"Open it: {link}",
                "",
                "--",
                f"You get this email because your alerts for “{KINDS[kind].label}” are set "
                f"to “{DELIVERIES['now']}”. Change them: {_alerts_link()}",
            ]
            outbox.queue(
                person.email,
                _subject(headline),
                "\n".join(body) + "\n",
                kind=f"alert:{kind}",
                about=f"alert-{kind}-{obj.id}",
                headers={"Auto-Submitted": "auto-generated"},
            )


# --- the daily summary ---------------------------------------------------------------------


class _NothingToSend(Exception):
    """Another worker took this login's entries: roll the empty digest back."""


def send_digests(now: datetime | None = None) -> int:
    """One worker pass: each active staff login with alerts waiting from before today (the
    business's day) gets one summary of them, once a day, from `DIGEST_HOUR`; returns how
    many summaries were queued."""
    now = now or utcnow()
    zone = clock.business_zone()
    local = now.astimezone(zone)
    if local.hour < DIGEST_HOUR:
        return 0
    day = local.date()
    cutoff = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    logins = list(
        AlertEntry.select(AlertEntry.staff_user)
        .where(AlertEntry.digest.is_null() & (AlertEntry.created_at < cutoff))
        .distinct()
        .tuples()
    )
    sent = 0
    for (staff_id,) in logins:
        try:
            sent += _send_digest(staff_id, day, cutoff, now)
        except (_NothingToSend, IntegrityError):
            continue  # another worker sent it, or took these entries, at the same moment
    return sent


def _send_digest(staff_id: int, day, cutoff: datetime, now: datetime) -> int:
    """Claim the login's entries from before `cutoff` and queue their summary, with the
    (login, day) marker, in one transaction; 0 when it was sent today already."""
    with write_txn():
        staff = StaffUser.get_or_none(StaffUser.id == staff_id)
        pending = (AlertEntry.staff_user == staff_id) & AlertEntry.digest.is_null()
        if staff is None or not staff.active:
            # A login switched off gets no mail; what waited for it goes.
            AlertEntry.delete().where(pending).execute()
            return 0
        marker = AlertDigest.select().where(
            (AlertDigest.staff_user == staff_id) & (AlertDigest.day == day)
        )
        if marker.exists():
            return 0  # today's went out; later entries wait for tomorrow's
        # Unique (login, day): a second worker inserting the same row at the same moment
        # waits for this transaction and fails (PostgreSQL), or waits for the write lock
        # and finds the marker above (SQLite).
        digest = AlertDigest.create(staff_user=staff_id, day=day, sent_at=now)
        claimed = (
            AlertEntry.update(digest=digest)
            .where(pending & (AlertEntry.created_at < cutoff))
            .execute()
        )
        if not claimed:
            raise _NothingToSend()
        entries = list(
            AlertEntry.select()
            .where(AlertEntry.digest == digest.id)
            .order_by(AlertEntry.created_at, AlertEntry.id)
        )
        AlertDigest.update(entries=len(entries)).where(AlertDigest.id == digest.id).execute()
        subject, body = digest_text(staff, entries, day)
        outbox.queue(
            staff.email,
            subject,
            body,
            kind="alert_digest",
            about=f"digest-{digest.id}",
            headers={"Auto-Submitted": "auto-generated"},
        )
    return 1


def digest_text(staff, entries, day) -> tuple[str, str]:
    """The subject and body of a login's daily summary of these entries."""
    count = f"{len(entries)} alert{'s' if len(entries) != 1 else ''}"
    subject = _subject(f"Daily summary for {datefmt(day)}: {count}")
    lines = [
        f"Hello {staff.display_name},",
        "",
        f"What happened before {datefmt(day)} that you chose to read in your daily summary:",
    ]
    for kind, alert_kind in KINDS.items():
        mine = [entry for entry in entries if entry.kind == kind]
        if not mine:
            continue
        lines += ["", f"{alert_kind.label} ({len(mine)})"]
        for entry in mine:
            lines.append(f"- {datetimefmt(entry.created_at)}: {entry.text}")
            if entry.link:
                lines.append(f"  {entry.link}")
    waiting = [f"- {count} {label}: {link}" for count, label, link in waiting_lines() if count]
    if waiting:
        lines += ["", "Waiting for the office now:", *waiting]
    lines += ["", "--", f"Change which alerts you get, and how: {_alerts_link()}"]
    return subject, "\n".join(lines) + "\n"


# --- what is waiting for the office --------------------------------------------------------


def waiting_counts() -> dict:
    """How many of each thing wait for the office (the back-office overview, the digest)."""
    mail = outbox.counts()
    return {
        "open_cases": Case.select().where(Case.status.in_(("new", "open"))).count(),
        "rfqs_to_quote": Rfq.select().where(Rfq.status == "submitted").count(),
        "access_requests": AccessRequest.select().where(AccessRequest.status == "pending").count(),
        "pending_users": PortalUser.select().where(PortalUser.status == "pending").count(),
        "pending_offline": Payment.select().where(Payment.status == "pending").count(),
        "flagged": Payment.select().where(Payment.flagged == True).count(),  # noqa: E712
        "waiting_mail": mail["waiting"],
        "failed_mail": mail.get("failed", 0),
        "uncertain_mail": mail.get("uncertain", 0),
    }


def waiting_lines() -> list[tuple[int, str, str]]:
    """(count, what, absolute link to its filtered list) for the digest."""
    counts = waiting_counts()
    rows = [
        ("open_cases", "cases waiting for us", "staff_cases.index", {"status": "open"}),
        ("rfqs_to_quote", "requests for quote to quote", "staff_quotes.index", {}),
        ("access_requests", "access requests to decide", "staff_queue.index", {}),
        ("pending_users", "registrations to approve", "staff_queue.index", {}),
        ("pending_offline", "payments to confirm", "staff_payments.index", {"status": "pending"}),
        (
            "failed_mail",
            "emails that could not be sent",
            "staff_outbox.index",
            {"status": "failed"},
        ),
    ]
    return [(counts[key], label, absolute_url(e, **args)) for key, label, e, args in rows]


# --- what the customer gets back -----------------------------------------------------------


def acknowledge(obj) -> None:
    """Email the customer login that sent `obj` (a case, an RFQ) that it arrived, with the
    link to follow it; inside the transaction that stored it, so one submission that was
    stored once is acknowledged once."""
    user = obj.portal_user
    if user is None or not user.email:
        return
    kind = "case_received" if isinstance(obj, Case) else "rfq_received"
    email_templates.queue(kind, user.email, **{"case" if kind == "case_received" else "rfq": obj})
