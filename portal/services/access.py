"""Portal access: login terms, invitations, self-registration, access requests, password
resets, and the roles and site scope of portal users.

Every function that writes is one unit of work in one `write_txn`, audited, and queues its
emails through the outbox in that same transaction. `by` is the acting StaffUser or a
company-admin PortalUser; company admins may only act inside their own company and may
only grant roles they hold themselves.
"""

from ..db import utcnow, write_txn
from ..models import PortalUser, TermsAcceptance
from . import audit, settings

# --- login terms -------------------------------------------------------------------------


def current_terms() -> dict:
    """The login terms as sign-in shows them: text, version and whether acceptance is required."""
    values = settings.load()
    text = (values["login_terms"] or "").strip()
    return {
        "text": text,
        "version": values["login_terms_version"],
        "required": bool(text) and values["require_terms_acceptance"],
    }


def needs_terms(user) -> bool:
    """True when this portal user must accept the current terms before signing in."""
    if user is None or user.is_staff:
        return False
    terms = current_terms()
    return terms["required"] and user.terms_version != terms["version"]


def accept_terms(user) -> TermsAcceptance:
    """Record that the user accepted the current terms: version, time and client address."""
    version = current_terms()["version"]
    with write_txn():
        return _accept_terms_in_txn(user, version)


def _accept_terms_in_txn(user, version: int) -> TermsAcceptance:
    now = utcnow()
    acceptance = TermsAcceptance.create(
        user=user, version=version, accepted_at=now, ip=audit.client_ip()
    )
    PortalUser.update(terms_version=version).where(PortalUser.id == user.id).execute()
    user.terms_version = version
    audit.record("access.terms_accepted", user, actor=user, version=version)
    return acceptance
