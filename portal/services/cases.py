"""Support cases opened by customers: numbered, with the first message, audited."""

from ..db import utcnow, write_txn
from ..models import Case, CaseMessage
from . import audit, counters


def create_case(user, subject: str, body: str, invoice=None, order=None) -> Case:
    """Open a case for the user's company (linked to an invoice or order they can see)."""
    subject = " ".join((subject or "").split())[:255]
    with write_txn():
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
            status="new",
            created_at=now,
            updated_at=now,
        )
        CaseMessage.create(case=case, portal_user=user, body=body.strip(), created_at=now)
        audit.record(
            "case.created",
            case,
            invoice=invoice.number if invoice is not None else None,
            order=order.number if order is not None else None,
        )
    return case
