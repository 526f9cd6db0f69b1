"""Support cases: opened by customers, answered by staff, followed to resolution.

Statuses: `new` (nobody from the office has answered), `open` (being worked on), `waiting`
(staff answered and wait for the customer), `resolved`, `closed`. A customer's reply
reopens a resolved case; staff replies and status changes email the customer through the
outbox; internal notes are never shown to customers and never emailed.
"""

import hashlib
import secrets
from datetime import timedelta

from peewee import IntegrityError, fn

from ..db import prepared, utcnow, write_txn
from ..models import Case, CaseMessage, Customer, PortalUser, SalesOrder, StaffUser
from ..validators import has_control_characters
from ..web import absolute_url
from . import (
    alerts,
    attachments,
    audit,
    counters,
    email_templates,
    notices,
    orders,
    reply_address,
    settings,
)

STATUSES = ("new", "open", "waiting", "resolved", "closed")
OPEN_STATUSES = ("new", "open", "waiting")
STATUS_LABELS = {
    "new": "New",
    "open": "In progress",
    "waiting": "Waiting for you",
    "resolved": "Resolved",
    "closed": "Closed",
}
# The office reads the same statuses from its side: "waiting" waits for the customer.
STAFF_STATUS_LABELS = {**STATUS_LABELS, "waiting": "Waiting for the customer"}


def new_request_key() -> str:
    """The token a case form carries: one post of that form opens one case."""
    return secrets.token_urlsafe(24)


def categories() -> list[str]:
    """The categories a customer chooses from (settings; empty: none asked)."""
    return list(settings.get("case_categories"))


def create_case(
    user,
    subject: str,
    body: str,
    invoice=None,
    order=None,
    files=(),
    category: str = "",
    request_key: str | None = None,
) -> Case:
    """Open a case for the user's company (linked to an invoice or order they can see).

    `files` are checked attachments (`attachments.prepare`); `request_key` is the form's
    token: a second post of the same form (a double click) returns the case the first
    opened, with `case.created` False.
    """
    request_key = (request_key or "")[:64] or None
    if request_key is None:
        # A form without a token (the invoice's question box): the same question posted
        # again within a minute is the same case; a key made of the content and the user's
        # latest case makes two posts at the same instant collide on the unique index.
        latest = _latest_case(user)
        if latest is not None and _same_question(latest, subject, body, invoice, order):
            latest.created = False
            return latest
        request_key = hashlib.sha256(
            repr(
                (
                    user.id,
                    latest.id if latest else 0,
                    invoice and invoice.id,
                    order and order.id,
                    subject.strip(),
                    body.strip(),
                )
            ).encode()
        ).hexdigest()
    existing = _case_for_key(user, request_key)
    if existing is not None:
        return existing
    try:
        return _create_case(user, subject, body, invoice, order, files, category, request_key)
    except IntegrityError:
        # Two posts at once (PostgreSQL): the unique key let one in; answer with its case.
        existing = _case_for_key(user, request_key)
        if existing is None:
            raise
        return existing


def _latest_case(user) -> Case | None:
    return Case.for_user(user).where(Case.portal_user == user.id).order_by(Case.id.desc()).first()


def _same_question(case: Case, subject, body, invoice, order) -> bool:
    """True when `case` was opened under a minute ago with this subject, text and link."""
    if utcnow() - case.created_at > timedelta(minutes=1):
        return False
    first = case.messages.order_by(CaseMessage.id).first()
    return (
        case.invoice_id == (invoice.id if invoice is not None else None)
        and case.order_id == (order.id if order is not None else None)
        and first is not None
        and first.body == (body or "").strip()
        and " ".join((subject or "").split())[:255] == case.subject
    )


def _case_for_key(user, request_key: str) -> Case | None:
    case = Case.for_user(user).where(Case.request_key == request_key).first()
    if case is not None:
        case.created = False
    return case


def clean_subject(subject: str) -> str:
    """The subject on one line: the view refuses control characters next to the field (B9);
    a caller that did not check (the invoice question box, a guest's quick request) still
    never stores one in a future email subject."""
    return " ".join(
        "".join(" " if has_control_characters(ch) else ch for ch in subject or "").split()
    )[:255]


def _create_case(user, subject, body, invoice, order, files, category, request_key) -> Case:
    subject = clean_subject(subject)
    category = category if category in categories() else ""
    attachments.store(files)
    with write_txn():
        if request_key is not None and Case.get_or_none(Case.request_key == request_key):
            raise IntegrityError("case request key used")
        now = utcnow()
        site_id = None
        if invoice is not None:
            site_id = invoice.site_id
        elif order is not None:
            site_id = order.site_id
        elif user.site_ids:
            site_id = user.site_ids[0]
        case = Case.create(
            number=counters.next_number("case", "CASE"),
            customer=user.contact.customer_id,
            site=site_id,
            portal_user=user,
            invoice=invoice,
            order=order,
            subject=subject,
            category=category,
            request_key=request_key,
            status="new",
            created_at=now,
            updated_at=now,
        )
        message = CaseMessage.create(case=case, portal_user=user, body=body.strip(), created_at=now)
        attachments.record(MESSAGE, message.id, files, portal_user=user)
        audit.record(
            "case.created",
            case,
            invoice=invoice.number if invoice is not None else None,
            order=order.number if order is not None else None,
            attachments=len(files),
        )
        alerts.raise_("invoice_question" if invoice is not None else "case_new", case)
        alerts.acknowledge(case)
    case.created = True
    return case


def for_user(user, status: str = "open"):
    """The cases this portal user may see, newest activity first; `status` open/closed/all."""
    query = Case.for_user(user).order_by(Case.updated_at.desc(), Case.id.desc())
    if status == "open":
        query = query.where(Case.status.in_(OPEN_STATUSES))
    elif status == "closed":
        query = query.where(Case.status.not_in(OPEN_STATUSES))
    return query


@prepared
def _open_count(sites):
    """How many of the scope's cases are open."""
    return Case.scoped(sites, fn.COUNT(Case.id)).where(Case.status.in_(OPEN_STATUSES)).tuples()


def open_count(user) -> int:
    """How many of the user's cases are open (the dashboard's count: a prepared query)."""
    sites, scope = Case.scope_of(user)
    return _open_count.first(sites, **scope)[0]


def case_for(user, case_id) -> Case | None:
    """One case the user may see (another company's or site's answers None, hence 404)."""
    try:
        case_id = int(case_id)
    except (TypeError, ValueError):
        return None
    return for_user(user, "all").where(Case.id == case_id).first()


def order_for(user, order_id) -> SalesOrder | None:
    """An order the user may link a case to: one they can open (orders role, in scope)."""
    return orders.order_for(user, order_id) if user.has_role("orders") else None


MESSAGE = "case_message"


@attachments.visible_to(MESSAGE)
def _customer_sees_message(user, message_id) -> bool:
    """A customer sees a message's files when they may open its case and it is no note."""
    if not (settings.get("module_cases") and user.has_role("cases")):
        return False
    message = CaseMessage.get_or_none(CaseMessage.id == message_id)
    if message is None or message.internal:
        return False
    return case_for(user, message.case_id) is not None


def thread_version(case: Case, internal: bool = False) -> str:
    """A tag that changes whenever what a case page shows changes: a message (with its files,
    sent in the same transaction), a status, a category, priority or owner all touch
    `updated_at`; the count of messages covers two in one microsecond. One small query, so
    a hundred open tabs polling every few seconds cost little."""
    query = CaseMessage.select(fn.COUNT(CaseMessage.id)).where(CaseMessage.case == case.id)
    if not internal:
        query = query.where(CaseMessage.internal == False)  # noqa: E712
    stamp = case.updated_at.isoformat() if case.updated_at else ""
    return f"{case.id}.{stamp}.{case.status}.{query.scalar()}.{'s' if internal else 'c'}"


def files_of(messages_) -> dict:
    """The attachments of these messages, by message id."""
    return attachments.for_owners(MESSAGE, [m.id for m in messages_])


def messages(case: Case, internal: bool = False) -> list[CaseMessage]:
    """The case's conversation in order; internal notes only when `internal`."""
    query = case.messages.order_by(CaseMessage.created_at, CaseMessage.id)
    if not internal:
        query = query.where(CaseMessage.internal == False)  # noqa: E712
    return list(query)


def reply_as_customer(case: Case, user, body: str, files=()) -> CaseMessage:
    """Add the customer's message; a waiting or resolved case goes back to the office."""
    attachments.store(files)
    with write_txn():
        now = utcnow()
        message = CaseMessage.create(case=case, portal_user=user, body=body.strip(), created_at=now)
        attachments.record(MESSAGE, message.id, files, portal_user=user)
        status = "open" if case.status in ("waiting", "resolved", "closed") else case.status
        Case.update(status=status, updated_at=now, resolved_at=None).where(
            Case.id == case.id
        ).execute()
        audit.record("case.customer_replied", case, status=status)
        alerts.raise_("case_reply", message)
    case.status = status
    return message


def resolve_as_customer(case: Case, user) -> None:
    """The customer says the question is answered."""
    with write_txn():
        now = utcnow()
        Case.update(status="resolved", updated_at=now, resolved_at=now).where(
            Case.id == case.id
        ).execute()
        audit.record("case.resolved_by_customer", case)
    case.status = "resolved"


def staff_reply(
    case: Case, staff, body: str, status: str, internal: bool = False, files=()
) -> CaseMessage:
    """Staff answer (or note) and status change in one transaction; the customer is emailed
    about anything that is not an internal note."""
    if status not in STATUSES:
        raise ValueError(f"unknown case status {status!r}")
    body = (body or "").strip()
    attachments.store(files)
    with write_txn():
        now = utcnow()
        message = None
        if body or files:
            message = CaseMessage.create(
                case=case, staff_user=staff, body=body, internal=internal, created_at=now
            )
            attachments.record(MESSAGE, message.id, files, staff_user=staff)
        changes = {"updated_at": now, "status": status}
        if status in ("resolved", "closed"):
            changes["resolved_at"] = case.resolved_at or now
        else:
            changes["resolved_at"] = None
        old_status = case.status
        Case.update(**changes).where(Case.id == case.id).execute()
        audit.record(
            "case.staff_replied" if body else "case.status_changed",
            case,
            actor=staff,
            old=old_status,
            new=status,
            internal=internal,
        )
        if ((body or files) and not internal) or status != old_status:
            note = body or ("Files were added to the case." if files else "")
            _email_customer(case, note if not internal else "", old_status, status)
    case.status = status
    return message


def _email_customer(case: Case, body: str, old: str, new: str) -> None:
    """Queue the "case update" email to whoever opened the case (or the company address).

    The login's contact gets it unless it turned case updates off (`notices`), with its
    one-click unsubscribe and, when replies by email are on, the case's signed Reply-To."""
    user = (
        PortalUser.get_or_none(PortalUser.id == case.portal_user_id)
        if case.portal_user_id
        else None
    )
    to = user.contact.email if user is not None else case.customer.email
    if not to:
        return
    headers = {}
    if user is not None:
        if not notices.wants(user.contact, "case_updates"):
            return
        headers = {
            **notices.headers(user.contact, "case_updates"),
            **reply_address.headers(case, user.contact),
        }
    lines = []
    if body:
        lines.append(body)
    if new != old:
        lines.append(f"The case is now: {STATUS_LABELS[new]}.")
    email_templates.queue(
        "case_update",
        to,
        headers=headers,
        name=user.contact.first_name if user is not None else case.customer.name,
        case_number=case.number,
        subject=case.subject,
        message="\n\n".join(lines),
        link=absolute_url("cases.show", case_id=case.id),
    )


PRIORITIES = {"urgent": "Urgent", "high": "High", "normal": "Normal", "low": "Low"}


def set_details(case: Case, staff, category: str, priority: str, owner_id) -> dict:
    """Staff set a case's category, priority and owner (an active staff login or nobody);
    returns {field: (old, new)} of what changed, each audited."""
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}")
    if category and category not in categories() and category != case.category:
        raise ValueError(f"unknown category {category!r}")
    owner_id = int(owner_id) if owner_id else None
    if owner_id is not None and not StaffUser.get_or_none(
        (StaffUser.id == owner_id) & (StaffUser.active == True)  # noqa: E712
    ):
        raise ValueError("no such staff login")
    new = {"category": category or "", "priority": priority, "assigned_to": owner_id}
    old = {"category": case.category, "priority": case.priority, "assigned_to": case.assigned_to_id}
    changed = {key: (old[key], new[key]) for key in new if old[key] != new[key]}
    if not changed:
        return changed
    with write_txn():
        Case.update(updated_at=utcnow(), **new).where(Case.id == case.id).execute()
        audit.record(
            "case.details_changed",
            case,
            actor=staff,
            **{key: f"{a} -> {b}" for key, (a, b) in changed.items()},
        )
    return changed


def _status_filter(query, status: str):
    if status == "open":
        return query.where(Case.status.in_(OPEN_STATUSES))
    if status in STATUSES:
        return query.where(Case.status == status)
    return query


def queue_counts(status: str, staff_id: int) -> dict:
    """How many cases of the status tab each category, priority and owner has."""

    def grouped(column):
        query = _status_filter(Case.select(column, fn.COUNT(Case.id)), status).group_by(column)
        return dict(query.tuples())

    owners = grouped(Case.assigned_to)
    return {
        "category": grouped(Case.category),
        "priority": grouped(Case.priority),
        "mine": owners.get(staff_id, 0),
        "unassigned": owners.get(None, 0),
    }


def staff_search(
    q: str = "",
    status: str = "open",
    category: str = "",
    priority: str = "",
    owner: str = "",
    staff_id: int | None = None,
):
    """Cases for the back office: open ones first by last activity, with search; filters by
    category, priority and owner (`me`, `none`, or a staff id)."""
    query = _status_filter(Case.select(), status).order_by(Case.updated_at.desc(), Case.id.desc())
    if category:
        query = query.where(Case.category == category)
    if priority in PRIORITIES:
        query = query.where(Case.priority == priority)
    if owner == "me":
        query = query.where(Case.assigned_to == staff_id)
    elif owner == "none":
        query = query.where(Case.assigned_to.is_null())
    elif owner.isdigit():
        query = query.where(Case.assigned_to == int(owner))
    q = (q or "").strip()
    if q:
        # `.contains()` escapes `%` and `_`: "50%" finds only "50%".
        query = query.join(Customer).where(
            Case.number.contains(q) | Case.subject.contains(q) | Customer.name.contains(q)
        )
    return query
