"""A contact's email notices as people see and change them (issue 18): the customer's "Email
notices" card on My account, and the contacts section of the staff customer page.

Who gets which mail is decided in `notices` (`wants`, `recipients`); this module only lays
those facts out and records changes through it, so the page and the senders never disagree.
"""

from dataclasses import dataclass

from ..db import write_txn
from ..models import Contact
from ..models_notices import NoticeChoice
from . import audit, notices

NOT_BILLING = "Only for billing contacts. You are not one: ask us if you should get billing mail."
ALWAYS_SENT = (
    "Payment receipts and security emails (password, sign-in, two-step sign-in) are always "
    "sent; they cannot be turned off."
)


@dataclass(frozen=True)
class Choice:
    """One topic on a page: whether it is on, whether it applies, and why not."""

    topic: str
    label: str
    help: str
    on: bool
    applies: bool = True
    reason: str = ""
    changed_by: str = ""
    changed_at: object = None


def for_contact(contact) -> list[Choice]:
    """Every topic for one contact, as its login's page shows it."""
    return for_contacts([contact])[contact.id]


def for_contacts(contacts) -> dict[int, list[Choice]]:
    """Every topic for each contact (one query), keyed by contact id: staff read them to
    answer "why did I not get it"."""
    ids = [c.id for c in contacts]
    rows = {}
    if ids:
        for row in NoticeChoice.select().where(NoticeChoice.contact.in_(ids)):
            rows[(row.contact_id, row.topic)] = row
    result = {}
    for contact in contacts:
        listed = []
        for topic, about in notices.TOPICS.items():
            row = rows.get((contact.id, topic))
            applies = not about.billing or contact.billing
            listed.append(
                Choice(
                    topic,
                    about.label,
                    about.help,
                    on=row is None or row.enabled,
                    applies=applies,
                    reason="" if applies else NOT_BILLING,
                    changed_by=row.changed_by if row else "",
                    changed_at=row.changed_at if row else None,
                )
            )
        result[contact.id] = listed
    return result


def save(contact, wanted: set[str], actor) -> int:
    """The login's choices from its form: each topic that applies is on when in `wanted`
    (billing topics of a contact who is not a billing contact are left as they are); each
    change audited. Returns how many changed."""
    changed = 0
    with write_txn():
        for choice in for_contact(contact):
            if choice.applies and notices.set_choice(
                contact, choice.topic, choice.topic in wanted, by="login", actor=actor
            ):
                changed += 1
    return changed


def set_billing(contact, on: bool, staff) -> bool:
    """Staff make a contact a billing contact (or not); audited. True when it changed."""
    with write_txn():
        changed = (
            Contact.update(billing=on)
            .where((Contact.id == contact.id) & (Contact.billing != on))
            .execute()
        )
        if changed:
            contact.billing = on
            audit.record("contact.billing", contact, actor=staff, billing=on)
    return bool(changed)
