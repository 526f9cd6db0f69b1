"""Who gets which customer mail: a contact's notice choices and the billing-contact flag.

Customer mail comes in topics (`TOPICS`). Each contact is on for every topic until it says
otherwise, on its login's "Email notices" page or with the one-click unsubscribe link every
such message carries (`List-Unsubscribe` and `List-Unsubscribe-Post`, RFC 8058): the link
needs no sign-in and turns off that one topic for that one contact. Choices are kept per
contact, not per login, so a billing contact without a portal login can unsubscribe too.

Billing topics (new invoice, reminder, statement) go only to contacts flagged as billing
contacts (`Contact.billing`). Receipts and security messages (password, sign-in, two-step)
have no topic: they cannot be turned off.

A caller asks `recipients(customer_id, topic, site_id)` for the contacts to mail about
something of the whole account or of one site, or `wants(contact, topic)` about one contact
it already chose (the login that opened a case), and queues each message with
`headers(contact, topic)`.
"""

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..db import utcnow
from ..models import Contact, PortalUser, PortalUserSite
from ..models_notices import NoticeChoice
from ..web import absolute_url
from . import audit, email_templates


@dataclass(frozen=True)
class Topic:
    label: str  # on the choices page and the unsubscribe page
    help: str
    billing: bool  # only for billing contacts


TOPICS = {
    "new_invoice": Topic("New invoices", "An email when a new invoice is issued to you.", True),
    "reminder": Topic(
        "Payment reminders", "Before an invoice is due and when it is overdue.", True
    ),
    "statement": Topic("Statements", "Your account statement, once a month.", True),
    "quote_published": Topic("Quotes", "When a quote you asked for is ready to review.", False),
    "order_shipped": Topic("Shipments", "When an order of yours is shipped.", False),
    "case_updates": Topic(
        "Support case updates", "When the office replies to a case or changes its status.", False
    ),
}

# A one-click unsubscribe link keeps working this long (mail is read and acted on late).
UNSUBSCRIBE_LIFETIME = timedelta(days=730)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="doorstep.unsubscribe")


def choices(contact) -> dict[str, bool]:
    """Every topic and whether the contact gets it."""
    chosen = {
        row.topic: row.enabled
        for row in NoticeChoice.select().where(NoticeChoice.contact == contact)
    }
    return {topic: chosen.get(topic, True) for topic in TOPICS}


def wants(contact, topic: str) -> bool:
    """Whether this contact gets `topic` mail: its choice, and for billing topics its flag."""
    if topic not in TOPICS:
        raise KeyError(topic)
    if not getattr(contact, "email", None):
        return False
    if TOPICS[topic].billing and not contact.billing:
        return False
    row = NoticeChoice.get_or_none(
        (NoticeChoice.contact == contact) & (NoticeChoice.topic == topic)
    )
    return row is None or row.enabled


def set_choice(contact, topic: str, enabled: bool, by: str = "login", actor=None) -> bool:
    """Record the contact's choice; True when it changed (audited)."""
    if topic not in TOPICS:
        raise KeyError(topic)
    if choices(contact)[topic] == enabled:
        return False
    updated = (
        NoticeChoice.update(enabled=enabled, changed_by=by, changed_at=utcnow())
        .where((NoticeChoice.contact == contact) & (NoticeChoice.topic == topic))
        .execute()
    )
    if not updated:
        NoticeChoice.create(contact=contact, topic=topic, enabled=enabled, changed_by=by)
    audit.record(
        "notice.on" if enabled else "notice.off",
        contact,
        actor=actor,
        topic=topic,
        by=by,
    )
    return True


def recipients(customer_id: int, topic: str, site_id: int | None = None) -> list:
    """The customer's contacts that get `topic` mail about something of the whole account
    (`site_id` None: a statement) or of one site (an invoice billed to it).

    A contact bound to sites (its login sees only some sites, or the contact belongs to one
    site) gets mail only about those sites, never a whole-account one. Contacts whose login
    is disabled are left out: the business turned that person away.
    """
    contacts = list(
        Contact.select()
        .where((Contact.customer == customer_id) & Contact.email.is_null(False))
        .order_by(Contact.id)
    )
    if not contacts:
        return []
    logins = {
        user.contact_id: user
        for user in PortalUser.select().where(PortalUser.contact.in_([c.id for c in contacts]))
    }
    scoped = {u.id for u in logins.values() if not u.all_sites}
    allowed: dict[int, set[int]] = {}
    if scoped:
        for link in PortalUserSite.select().where(PortalUserSite.user.in_(list(scoped))):
            allowed.setdefault(link.user_id, set()).add(link.site_id)
    chosen = _chosen([c.id for c in contacts], topic)
    result = []
    for contact in contacts:
        login = logins.get(contact.id)
        if login is not None and login.status == "disabled":
            continue
        if TOPICS[topic].billing and not contact.billing:
            continue
        if not chosen.get(contact.id, True):
            continue
        sites = None
        if login is not None and not login.all_sites:
            sites = allowed.get(login.id, set())
        elif contact.site_id is not None:
            sites = {contact.site_id}
        if sites is not None and (site_id is None or site_id not in sites):
            continue
        result.append(contact)
    return result


def send(kind: str, topic: str, customer_id: int, site_id: int | None = None, **values) -> list:
    """Queue email `kind` to every contact of `recipients(customer_id, topic, site_id)`, each
    greeted by name with its own one-click unsubscribe link and headers; call inside the
    transaction of the change. Returns the addresses queued to."""
    sent_to = []
    for contact in recipients(customer_id, topic, site_id=site_id):
        email_templates.queue(
            kind,
            contact.email,
            headers=headers(contact, topic),
            name=contact.full_name,
            unsubscribe_link=unsubscribe_url(contact, topic),
            **values,
        )
        sent_to.append(contact.email)
    return sent_to


def _chosen(contact_ids: list[int], topic: str) -> dict[int, bool]:
    rows = NoticeChoice.select().where(
        NoticeChoice.contact.in_(contact_ids) & (NoticeChoice.topic == topic)
    )
    return {row.contact_id: row.enabled for row in rows}


def unsubscribe_token(contact, topic: str) -> str:
    return _serializer().dumps([contact.id, topic])


def read_unsubscribe(token: str):
    """(contact, topic) of a valid link, else None."""
    try:
        contact_id, topic = _serializer().loads(
            token, max_age=int(UNSUBSCRIBE_LIFETIME.total_seconds())
        )
    except (BadSignature, TypeError, ValueError):
        return None
    if topic not in TOPICS:
        return None
    contact = Contact.get_or_none(Contact.id == contact_id)
    return (contact, topic) if contact is not None else None


def unsubscribe_url(contact, topic: str) -> str:
    return absolute_url("notices.unsubscribe", token=unsubscribe_token(contact, topic))


def headers(contact, topic: str) -> dict:
    """The one-click unsubscribe headers for a message of `topic` to this contact (RFC 8058:
    the mail client POSTs `List-Unsubscribe=One-Click` to the link, with no sign-in)."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(contact, topic)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
