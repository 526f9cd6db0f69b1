"""Portal access: login terms, invitations, self-registration, access requests, password
resets, and the roles and site scope of portal users.

Every function that writes is one unit of work in one `write_txn`, audited, and queues its
emails through the outbox in that same transaction. `by` is the acting StaffUser or a
company-admin PortalUser; company admins may only act inside their own company and may
only grant roles they hold themselves.
"""

import hmac

from flask import has_request_context

from .. import tokens
from ..db import locked, utcnow, write_txn
from ..models import (
    PORTAL_ROLES,
    AccessRequest,
    Contact,
    Customer,
    PortalUser,
    PortalUserSite,
    Site,
    TermsAcceptance,
)
from ..security import hash_secret, new_stamp, normalize_code, verify_code, verify_secret
from ..web import absolute_url
from . import alerts, audit, email_templates, settings, throttle
from . import auth as auth_service
from .backoffice import Problem

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


# --- problems, roles and scope -----------------------------------------------------------


class AccessProblem(Problem):
    """Something a person must fix; `field` names the form field (or None for the whole form)."""


class NotAllowed(AccessProblem):
    """The acting user may not do this to this login (views answer 404 or 403)."""

    def __init__(self, message: str = "You cannot change this login."):
        super().__init__(None, message)


ROLE_LABELS = {
    "invoices": "Invoices",
    "statements": "Statements",
    "quotes": "Quotes",
    "orders": "Orders",
    "cases": "Support cases",
    "company_admin": "Company administrator",
}
ROLE_HINTS = {
    "invoices": "see and pay invoices",
    "statements": "see statements, aging and payment history",
    "quotes": "ask for quotes and accept or decline them",
    "orders": "follow orders and shipments",
    "cases": "open and follow support cases",
    "company_admin": "manage the company's portal logins",
}
STATUS_LABELS = {
    "invited": "Invited",
    "pending": "Waiting for approval",
    "active": "Active",
    "disabled": "Deactivated",
}


def is_staff(by) -> bool:
    return bool(getattr(by, "is_staff", False))


def _check_actor(by, customer_id: int, user=None) -> None:
    """Staff may act on any login; a company admin only inside their own company."""
    if is_staff(by):
        return
    if by is None or not by.is_active or not by.has_role("company_admin"):
        raise NotAllowed("Only a company administrator can manage logins.")
    if by.contact.customer_id != customer_id:
        raise NotAllowed()
    if user is not None and user.id == by.id:
        raise NotAllowed("You cannot change your own login here; ask another administrator.")
    if user is not None and by.site_ids is not None and user.site_ids is None:
        # A site-limited admin cannot touch a login that sees the whole account.
        raise NotAllowed()
    if user is not None and by.site_ids is not None and not set(user.site_ids) <= set(by.site_ids):
        raise NotAllowed()


def clean_roles(roles, by, kept=frozenset()) -> list[str]:
    """Known roles in their canonical order; a company admin may only grant roles they hold
    (or leave in place `kept` roles the login already has)."""
    wanted = {r.strip() for r in roles or [] if r and r.strip()}
    unknown = wanted - set(PORTAL_ROLES)
    if unknown:
        raise AccessProblem("roles", "Unknown role: " + ", ".join(sorted(unknown)) + ".")
    if not wanted:
        raise AccessProblem("roles", "Choose at least one thing this person may do.")
    if not is_staff(by) and not wanted <= by.role_set | set(kept):
        raise AccessProblem("roles", "You can only give the roles you have yourself.")
    return [r for r in PORTAL_ROLES if r in wanted]


def clean_sites(customer_id: int, site_ids, by) -> list[int] | None:
    """None for the whole account, else the ids of the customer's sites (checked to be its own)."""
    limited_by = None if is_staff(by) else by.site_ids
    if site_ids is None:
        if limited_by is not None:
            raise AccessProblem("sites", "You can only give access to your own sites.")
        return None
    ids = sorted({int(i) for i in site_ids})
    if not ids:
        raise AccessProblem("sites", "Choose at least one site, or the whole account.")
    found = {
        s.id for s in Site.select(Site.id).where((Site.customer == customer_id) & Site.id.in_(ids))
    }
    if found != set(ids):
        raise AccessProblem("sites", "Choose sites of this company.")
    if limited_by is not None and not set(ids) <= set(limited_by):
        raise AccessProblem("sites", "You can only give access to your own sites.")
    return ids


def _write_scope(user: PortalUser, roles: list[str], site_ids: list[int] | None) -> None:
    user.roles = ",".join(roles)
    user.all_sites = site_ids is None
    user.save()
    PortalUserSite.delete().where(PortalUserSite.user == user.id).execute()
    for site_id in site_ids or []:
        PortalUserSite.create(user=user, site=site_id)
    user.__dict__.pop("_site_ids", None)


def _scope_of(user: PortalUser) -> tuple[list[str], list[int] | None]:
    sites = None
    if not user.all_sites:
        sites = sorted(
            link.site_id for link in PortalUserSite.select().where(PortalUserSite.user == user.id)
        )
    return sorted(user.role_set), sites


def _locked_user(user_id: int) -> PortalUser:
    return locked(PortalUser.select().where(PortalUser.id == user_id)).get()


# --- links -------------------------------------------------------------------------------

# Which status a login must have for each kind of link to work.
LINK_STATUS = {"invite": "invited", "register": "invited", "reset": "active"}


def make_link(purpose: str, user: PortalUser) -> str:
    """An absolute single-use link: it carries a digest of the login's stamp, which the
    password being set (or the invitation being resent or revoked) rotates."""
    token = tokens.make(purpose, {"u": user.id, "s": tokens.state_digest(user.auth_stamp)})
    endpoint = {
        "invite": "password.invitation",
        "register": "register.confirm",
        "reset": "password.reset",
    }[purpose]
    return absolute_url(endpoint, token=token)


def read_link(purpose: str, token: str) -> PortalUser | None:
    """The login a link is for, while the link is valid, unexpired and unused; else None."""
    payload = tokens.read(purpose, token or "")
    if not isinstance(payload, dict):
        return None
    user = PortalUser.get_or_none(PortalUser.id == payload.get("u"))
    if user is None or user.status != LINK_STATUS[purpose]:
        return None
    if not hmac.compare_digest(str(payload.get("s")), tokens.state_digest(user.auth_stamp)):
        return None
    if not user.contact.customer.portal_enabled:
        return None
    return user


def _expires(purpose: str) -> str:
    seconds = int(tokens.LIFETIMES[purpose].total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    hours = seconds // 3600
    return f"{hours} hour" + ("s" if hours != 1 else "")


def _email_context(user: PortalUser, purpose: str | None = None) -> dict:
    context = {
        "user": user,
        "name": user.contact.full_name,
        "customer_name": user.contact.customer.name,
    }
    if purpose:
        context["link"] = make_link(purpose, user)
        context["expires"] = _expires(purpose)
    return context


def complete_link(purpose: str, token: str, password: str, accept_terms: bool = False):
    """Set the password through an invite, registration or reset link; the link dies with it.

    Returns the login, or None when the link is no longer valid (used twice, say).
    """
    user = read_link(purpose, token)
    if user is None:
        return None
    new_hash = hash_secret(password)  # argon2 runs before the write lock is taken
    with write_txn():
        user = _locked_user(user.id)
        # Checked again under the lock: of two tabs using one link, only the first wins.
        if read_link(purpose, token) is None:
            return None
        # What auth.set_password does, with the hash made outside the transaction: a new
        # stamp kills this link and every other one, and every session of the login ends.
        user.password_hash = new_hash
        user.auth_stamp = new_stamp()
        auth_service.end_all_sessions(user)
        now = utcnow()
        user.status = "active"
        user.activated_at = user.activated_at or now
        user.save()
        if accept_terms and needs_terms(user):
            _accept_terms_in_txn(user, current_terms()["version"])
        if purpose == "reset":
            email_templates.queue("password_changed", user.email, **_email_context(user))
        audit.record(f"access.password_set_{purpose}", user, actor=user)
    return user


# --- invitations and the state of a login ------------------------------------------------


def invite(contact: Contact, roles, site_ids, by) -> PortalUser:
    """Give a contact a portal login (status invited) and email them a link to set a password."""
    with write_txn():
        return _invite_in_txn(contact, roles, site_ids, by)


def _invite_in_txn(contact: Contact, roles, site_ids, by) -> PortalUser:
    _check_actor(by, contact.customer_id)
    roles = clean_roles(roles, by)
    site_ids = clean_sites(contact.customer_id, site_ids, by)
    if not contact.email:
        raise AccessProblem("email", "Add an email address to this contact first.")
    if not contact.customer.portal_enabled:
        raise AccessProblem(None, "The portal is switched off for this customer.")
    user = PortalUser.get_or_none(PortalUser.contact == contact.id)
    if user is not None:
        if user.status == "active":
            raise AccessProblem(None, f"{contact.full_name} already has an active login.")
        if user.status == "pending":
            raise AccessProblem(None, f"{contact.full_name} is waiting for approval: approve it.")
        _check_actor(by, contact.customer_id, user)
        user = _locked_user(user.id)
    now = utcnow()
    if user is None:
        user = PortalUser.create(contact=contact, status="invited", auth_stamp=new_stamp())
    user.status = "invited"
    user.auth_stamp = new_stamp()
    user.invited_at = now
    _write_scope(user, roles, site_ids)
    email_templates.queue("invitation", contact.email, **_email_context(user, "invite"))
    audit.record("access.invited", user, actor=by, email=contact.email, roles=roles, sites=site_ids)
    return user


def resend_invitation(user: PortalUser, by) -> PortalUser:
    """Send a fresh invitation link; the older links stop working."""
    with write_txn():
        _check_actor(by, user.contact.customer_id, user)
        user = _locked_user(user.id)
        if user.status != "invited":
            raise AccessProblem(None, "Only a login that is still invited can be sent again.")
        _count_invitation(by, user.contact.customer_id)
        user.auth_stamp = new_stamp()
        user.invited_at = utcnow()
        user.save()
        email_templates.queue("invitation", user.email, **_email_context(user, "invite"))
        audit.record("access.invitation_resent", user, actor=by, email=user.email)
    return user


def deactivate(user: PortalUser, by) -> PortalUser:
    """Switch a login off (or revoke an invitation): its sessions end and its links die."""
    with write_txn():
        _check_actor(by, user.contact.customer_id, user)
        user = _locked_user(user.id)
        if user.status == "disabled":
            return user
        old = user.status
        user.status = "disabled"
        user.auth_stamp = new_stamp()
        user.save()
        ended = auth_service.end_all_sessions(user)
        audit.record("access.deactivated", user, actor=by, old_status=old, sessions_ended=ended)
    return user


def reactivate(user: PortalUser, by) -> PortalUser:
    """Switch a login back on; one that never set a password is invited again."""
    with write_txn():
        _check_actor(by, user.contact.customer_id, user)
        user = _locked_user(user.id)
        if user.status != "disabled":
            raise AccessProblem(None, "This login is not deactivated.")
        user.auth_stamp = new_stamp()
        if user.password_hash:
            user.status = "active"
            user.save()
        else:
            user.status = "invited"
            user.invited_at = utcnow()
            user.save()
            email_templates.queue("invitation", user.email, **_email_context(user, "invite"))
        audit.record("access.reactivated", user, actor=by, status=user.status)
    return user


def set_access(user: PortalUser, roles, site_ids, by) -> PortalUser:
    """Change what a login may do and which sites it sees; narrowing it ends its sessions."""
    with write_txn():
        _check_actor(by, user.contact.customer_id, user)
        user = _locked_user(user.id)
        roles = clean_roles(roles, by, kept=user.role_set)
        site_ids = clean_sites(user.contact.customer_id, site_ids, by)
        old_roles, old_sites = _scope_of(user)
        _write_scope(user, roles, site_ids)
        narrowed = not set(old_roles) <= set(roles) or (
            site_ids is not None and (old_sites is None or not set(old_sites) <= set(site_ids))
        )
        ended = auth_service.end_all_sessions(user) if narrowed else 0
        if (old_roles, old_sites) != (sorted(roles), site_ids):
            audit.record(
                "access.changed",
                user,
                actor=by,
                old={"roles": old_roles, "sites": old_sites},
                new={"roles": roles, "sites": site_ids},
                sessions_ended=ended,
            )
    return user


def approve_registration(user: PortalUser, by) -> PortalUser:
    """Let a pending self-registration in: the person gets a link to set their password."""
    with write_txn():
        _check_actor(by, user.contact.customer_id, user)
        user = _locked_user(user.id)
        if user.status != "pending":
            raise AccessProblem(None, "This registration is not waiting for approval.")
        user.status = "invited"
        user.auth_stamp = new_stamp()
        user.invited_at = utcnow()
        user.save()
        email_templates.queue("access_approved", user.email, **_email_context(user, "invite"))
        audit.record("access.registration_approved", user, actor=by, email=user.email)
    return user


def reject_registration(user: PortalUser, by) -> PortalUser:
    """Turn a pending self-registration down: the login stays switched off; they are told."""
    with write_txn():
        _check_actor(by, user.contact.customer_id, user)
        user = _locked_user(user.id)
        if user.status != "pending":
            raise AccessProblem(None, "This registration is not waiting for approval.")
        user.status = "disabled"
        user.auth_stamp = new_stamp()
        user.save()
        email_templates.queue("access_rejected", user.email, **_email_context(user), note="")
        audit.record("access.registration_rejected", user, actor=by, email=user.email)
    return user


def on_contact_created(contact: Contact, by) -> PortalUser | None:
    """After the back office adds a contact: invite them when the account class says so."""
    customer = contact.customer
    if not (customer.auto_invite and customer.portal_enabled and contact.email):
        return None
    if PortalUser.select().where(PortalUser.contact == contact.id).exists():
        return None
    return invite(contact, settings.get("default_roles"), None, by)


contact_created = on_contact_created


class _System:
    """The actor of invitations no person sent by hand (an import from the command line):
    staff rights, and "system" in the audit log."""

    is_staff = True
    is_active = True
    actor_kind = "system"
    id = None
    email = "import"


def invite_new_contacts(contacts) -> list[PortalUser]:
    """Invite contacts the importer just created under an auto-invite account class, with
    the default roles; inside the import's transaction (emails wait in the outbox)."""
    from flask_login import current_user

    by = current_user if has_request_context() and is_staff(current_user) else _System()
    roles = settings.get("default_roles")
    return [_invite_in_txn(contact, roles, None, by) for contact in contacts if contact.email]


# --- access requests ---------------------------------------------------------------------


def request_access(values: dict) -> AccessRequest | None:
    """A guest asks for a login: queued for staff; throttled per client address (one answer)."""
    ip = audit.client_ip()
    email = auth_service.normalize_email(values.get("email", ""))
    with write_txn():
        if throttle.locked_until("request-ip", ip) or throttle.locked_until("email-target", email):
            audit.record("access.request_throttled", None, email=email)
            return None
        throttle.fail("request-ip", ip)
        request_row = AccessRequest.create(
            name=values["name"].strip(),
            company=values["company"].strip(),
            email=email,
            phone=(values.get("phone") or "").strip(),
            account_number=(values.get("account_number") or "").strip().upper(),
            message=(values.get("message") or "").strip(),
            ip=ip,
        )
        # The acknowledgement is bounded by the per-address throttle above (B3).
        email_templates.queue(
            "access_request_received", email, name=request_row.name, company=request_row.company
        )
        audit.record("access.requested", request_row, email=email)
        alerts.raise_("access_request", request_row)
    return request_row


def request_customer(row: AccessRequest) -> Customer | None:
    """The customer an access request names: its contact's, else its account number's."""
    contact = Contact.get_or_none(Contact.email == row.email)
    if contact is not None:
        return contact.customer
    if row.account_number:
        return Customer.get_or_none(Customer.account_number == row.account_number)
    return None


def email_domain(email: str) -> str:
    return (email or "").rpartition("@")[2].strip().lower()


def known_domains(customer_id: int) -> set[str]:
    """The email domains a customer's contacts (and its own billing address) use."""
    contacts = Contact.select(Contact.email).where(Contact.customer == customer_id)
    emails = [c.email for c in contacts]
    emails.append(Customer.get_by_id(customer_id).email)
    return {email_domain(e) for e in emails if e}


def _domain_note(email: str, customer_id: int) -> str:
    """For the company admins: does the address's domain match one of their contacts?"""
    domain = email_domain(email)
    if domain in known_domains(customer_id):
        return f"Their address's domain ({domain}) is one your company's contacts use."
    return f"Their address's domain ({domain}) matches none of your company's contacts."


def approve_request(access_request: AccessRequest, by, customer: Customer | None = None):
    """Grant a requested login: the matching contact (or a new one under the customer with
    the given account number) gets a login with the default roles. A customer with its own
    company administrators decides itself (B4): the login waits for their approval, and they
    are asked by email, exactly as for an invoice-verified registration; otherwise the
    person is invited at once."""
    with write_txn():
        row = locked(AccessRequest.select().where(AccessRequest.id == access_request.id)).get()
        if row.status != "pending":
            raise AccessProblem(None, "This request has already been decided.")
        if customer is None and row.account_number:
            customer = Customer.get_or_none(Customer.account_number == row.account_number)
        contact = Contact.get_or_none(Contact.email == row.email)
        if contact is not None and customer is not None and contact.customer_id != customer.id:
            raise AccessProblem("customer", "This email belongs to a contact of another customer.")
        if contact is None and customer is None:
            raise AccessProblem(
                "customer", "No customer has this account number: choose the customer."
            )
        # Judged before the request adds its own contact (whose domain would then be known).
        domain_note = _domain_note(row.email, contact.customer_id if contact else customer.id)
        if contact is None:
            first, _, last = row.name.strip().partition(" ")
            contact = Contact.create(
                customer=customer,
                email=row.email,
                first_name=first[:100],
                last_name=last.strip()[:100],
                phone=row.phone,
            )
            audit.record("contact.created", contact, actor=by, source="access request")
        admins = company_admins(contact.customer_id)
        if admins:
            user = PortalUser.get_or_none(PortalUser.contact == contact.id)
            if user is not None and user.status in ("active", "pending"):
                raise AccessProblem(
                    None, f"{contact.full_name} already has a login ({STATUS_LABELS[user.status]})."
                )
            user = _await_company_admin(contact, admins, user, domain_note=domain_note)
            audit.record(
                "access.pending_company_admin",
                user,
                actor=by,
                email=contact.email,
                admins=[a.email for a in admins],
                source="access request",
            )
        else:
            user = _invite_in_txn(contact, settings.get("default_roles"), None, by)
        row.status = "approved"
        row.decided_at = utcnow()
        row.save()
        audit.record("access.request_approved", row, actor=by, user=user.id, status=user.status)
    return user


def reject_request(access_request: AccessRequest, by, note: str = "") -> AccessRequest:
    """Turn an access request down with a polite email (and the note, if staff wrote one)."""
    with write_txn():
        row = locked(AccessRequest.select().where(AccessRequest.id == access_request.id)).get()
        if row.status != "pending":
            raise AccessProblem(None, "This request has already been decided.")
        row.status = "rejected"
        row.decided_at = utcnow()
        row.save()
        email_templates.queue("access_rejected", row.email, name=row.name, note=note.strip())
        audit.record("access.request_rejected", row, actor=by, note=note.strip())
    return row


# --- invoice-verified self-registration --------------------------------------------------


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = " ".join((name or "").split()).partition(" ")
    return first[:100], last[:100]


def _verify_invoice(number: str, secret: str, account_path: bool):
    """The invoice when the typed code (or, where allowed, account number) matches it."""
    from .quickpay import _find  # the same lookup, same dummy-hash timing (A2)

    invoice = _find(number)
    ok = verify_code(invoice.quick_pay_hash if invoice else None, normalize_code(secret))
    if not ok and account_path and invoice is not None:
        typed = (secret or "").strip().upper().encode()
        ok = hmac.compare_digest(typed, invoice.customer.account_number.upper().encode())
    return invoice if ok else None


def register(values: dict) -> str:
    """Invoice-verified self-registration; returns what happened, for tests and the audit log.

    The person always gets the same answer (B1). Throttled per invoice number, per email and
    per client address (B3). An email that already has a login gets a notice instead of a
    second login (B2). A company that already has an administrator gets a pending login the
    administrator must approve (B4); otherwise the email carries a link to set a password.
    """
    from .quickpay import number_key

    ip = audit.client_ip()
    email = auth_service.normalize_email(values["email"])
    number = number_key(values["invoice_number"])
    account_path = settings.get("quick_pay_account_number")
    scopes = [("register-invoice", number), ("register-ip", ip), ("email-target", email)]
    if account_path:
        scopes.append(("register-account", number))
    for scope, key in scopes:
        if throttle.locked_until(scope, key):
            with write_txn():
                audit.record("access.register_throttled", None, scope=scope, number=number)
            return "throttled"
    invoice = _verify_invoice(values["invoice_number"], values["code"], account_path)
    customer = invoice.customer if invoice else None
    closed = (
        customer is not None and customer.portal_enabled and not customer.allow_self_registration
    )
    if customer is not None and not (customer.allow_self_registration and customer.portal_enabled):
        customer = None
    with write_txn():
        throttle.fail("register-ip", ip)
        if closed:
            # The invoice proved them a customer of a company that invites only: say how
            # to get a login instead of a "check your email" that nothing follows.
            throttle.clear("register-invoice", number)
            throttle.fail("email-target", email)
            email_templates.queue(
                "registration_closed",
                email,
                name=values["name"],
                customer_name=invoice.customer.name,
                link=_ask_for_access_link(),
            )
            audit.record("access.register_closed", invoice.customer, email=email)
            return "closed"
        if customer is None:
            throttle.fail("register-invoice", number)
            if account_path:
                throttle.fail("register-account", number)
            audit.record("access.register_failed", None, number=number, email=email)
            return "mismatch"
        throttle.clear("register-invoice", number)
        # Every email sent counts against its address, whatever it says (B3).
        throttle.fail("email-target", email)
        contact = Contact.get_or_none(Contact.email == email)
        existing = PortalUser.get_or_none(PortalUser.contact == contact.id) if contact else None
        if existing is not None and existing.status == "pending":
            # They cannot sign in yet: "Sign in here" would be a lie.
            email_templates.queue("registration_waiting", email, **_email_context(existing))
            audit.record("access.register_existing", existing, email=email)
            return "waiting"
        if existing is not None:
            email_templates.queue(
                "registration_exists",
                email,
                **_email_context(existing),
                reset_link=absolute_url("password.forgot"),
                login_link=absolute_url("auth.login"),
            )
            audit.record("access.register_existing", existing, email=email)
            return "exists"
        if contact is not None and contact.customer_id != customer.id:
            audit.record("access.register_other_company", contact, number=number)
            return "conflict"
        if contact is None:
            first, last = _split_name(values["name"])
            contact = Contact.create(
                customer=customer,
                email=email,
                first_name=first,
                last_name=last,
                phone=(values.get("phone") or "").strip()[:50],
            )
            audit.record("contact.created", contact, source="self-registration")
        admins = company_admins(customer.id)
        if admins:
            user = _await_company_admin(contact, admins)
        else:
            user = PortalUser.create(
                contact=contact,
                status="invited",
                roles=",".join(r for r in PORTAL_ROLES if r in settings.get("default_roles")),
                all_sites=True,
                auth_stamp=new_stamp(),
                invited_at=utcnow(),
            )
        audit.record(
            "access.registered", user, invoice=invoice.number, email=email, status=user.status
        )
        if not admins:
            email_templates.queue("registration", email, **_email_context(user, "register"))
            return "invited"
        alerts.raise_("registration_waiting", user)
        return "pending"


def _ask_for_access_link() -> str:
    """Where someone without a way to register asks for a login: the access request form
    when it is on, else the business's contact address, else the portal's front page."""
    if settings.get("request_access"):
        return absolute_url("access.new")
    contact = settings.get("contact_email")
    return f"mailto:{contact}" if contact else absolute_url("auth.login")


def _await_company_admin(
    contact: Contact, admins: list[PortalUser], user=None, domain_note: str | None = None
) -> PortalUser:
    """A login with the default roles that waits for the company's own administrators (B4):
    the person is told it waits, every admin is asked by email. The one path for an
    invoice-verified registration and a staff-approved access request alike; `user` is the
    contact's existing (invited or deactivated) login, if any, which is reused. An access
    request (`domain_note` given) proved nothing: the admins' email says so, and whether
    the address's domain is one their contacts use."""
    roles = ",".join(r for r in PORTAL_ROLES if r in settings.get("default_roles"))
    if user is None:
        user = PortalUser.create(contact=contact, status="pending", auth_stamp=new_stamp())
    else:
        user = _locked_user(user.id)
    user.status = "pending"
    user.auth_stamp = new_stamp()  # any invitation link sent before dies
    user.invited_at = utcnow()
    _write_scope(user, roles.split(","), None)
    email_templates.queue("registration_pending", contact.email, **_email_context(user))
    customer = contact.customer
    extra = {} if domain_note is None else {"domain_note": domain_note}
    for admin in admins:
        email_templates.queue(
            "access_request_pending" if extra else "registration_request",
            admin.email,
            admin_name=admin.contact.full_name,
            name=contact.full_name,
            email=contact.email,
            customer_name=customer.name,
            link=absolute_url("company.index"),
            **extra,
        )
    return user


def company_admins(customer_id: int) -> list[PortalUser]:
    """The active company administrators of a customer (they approve registrations)."""
    users = (
        PortalUser.select(PortalUser, Contact)
        .join(Contact)
        .where((Contact.customer == customer_id) & (PortalUser.status == "active"))
    )
    return [u for u in users if u.has_role("company_admin")]


# --- forgotten passwords -----------------------------------------------------------------


def request_reset(email: str) -> str:
    """Email a reset link to an active login; the answer is the same whatever happened."""
    ip = audit.client_ip()
    email = auth_service.normalize_email(email)
    with write_txn():
        if throttle.locked_until("reset-ip", ip) or throttle.locked_until("email-target", email):
            audit.record("access.reset_throttled", None, email=email)
            return "throttled"
        throttle.fail("reset-ip", ip)
        user = auth_service.find_portal_user(email)
        if user is None or not user.contact.customer.portal_enabled:
            audit.record("access.reset_unknown", None, email=email)
            return "unknown"
        throttle.fail("email-target", email)
        if user.status == "active":
            email_templates.queue("password_reset", email, **_email_context(user, "reset"))
        elif user.status == "invited":
            # Never set a password: a fresh invitation is what they need.
            user = _locked_user(user.id)
            user.auth_stamp = new_stamp()
            user.save()
            email_templates.queue("invitation", email, **_email_context(user, "invite"))
        else:
            audit.record("access.reset_inactive", user, status=user.status)
            return user.status
        audit.record("access.reset_requested", user, email=email)
        return "sent"


# --- password policy ---------------------------------------------------------------------

PASSWORD_MIN = 10
PASSWORD_MAX = 128
# The most common passwords of public breach lists that are long enough to pass the length
# rule; a person who picks one of these is refused (C3). Compared case-insensitively.
COMMON_PASSWORDS = frozenset(
    """
    1234567890 12345678910 123456789a 0123456789 0987654321 1q2w3e4r5t 1qaz2wsx3edc
    qwertyuiop qwerty1234 qwerty12345 qwerty123456 asdfghjkl; asdfghjkl1 zxcvbnm123
    password12 password123 password1234 password12345 password!! passw0rd123 p@ssw0rd123
    iloveyou12 iloveyou123 1234qwerty abcdefghij abc1234567 abcd123456 aa12345678
    a123456789 q123456789 1111111111 0000000000 2222222222 5555555555 7777777777 8888888888
    9999999999 1234512345 1122334455 1212121212 123123123123 123321123321 football123
    baseball123 welcome123 welcome1234 letmein123 letmein1234 sunshine123 princess123
    starwars123 whatever123 trustno1234 dragon1234 monkey1234 superman123 batman1234
    changeme123 changeme1234 administrator admin12345 admin123456 adminadmin rootroot12
    qazwsxedcrfv 1q2w3e4r5t6y zaq12wsxcde passwordpassword liverpool1 chelsea123
    michael123 jennifer123 computer123 internet123 samsung123 secret1234 mustang123
    shadow1234 master1234 killer1234 hello12345 freedom123 charlie123 summer2024
    summer2025 summer2026 winter2024 winter2025 winter2026 spring2025 autumn2025
    company123 doorstep123 portal1234 invoice123 correcthorse
    """.split()
)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None: length and well-known passwords only (C3)."""
    if len(password) < PASSWORD_MIN:
        return f"Use at least {PASSWORD_MIN} characters; a few words make a strong password."
    if len(password) > PASSWORD_MAX:
        return f"Use at most {PASSWORD_MAX} characters."
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 4:
        return "That password is too common. Pick something harder to guess."
    return None


# --- my account --------------------------------------------------------------------------


def update_profile(user: PortalUser, values: dict) -> dict:
    """Change the user's own name, phone and time zone (never email, roles or company: E4);
    audited."""
    with write_txn():
        contact = locked(Contact.select().where(Contact.id == user.contact_id)).get()
        changed = {}
        for name in ("first_name", "last_name", "phone"):
            new = " ".join((values.get(name) or "").split())
            if getattr(contact, name) != new:
                changed[name] = (getattr(contact, name), new)
                setattr(contact, name, new)
        if changed:
            contact.save()
            user.contact = contact
        zone = values.get("time_zone")
        if zone is not None and zone != user.time_zone:
            changed["time_zone"] = (user.time_zone, zone)
            PortalUser.update(time_zone=zone).where(PortalUser.id == user.id).execute()
            user.time_zone = zone
        if changed:
            audit.record("account.profile_changed", contact, actor=user, changes=changed)
    return changed


def change_password(user: PortalUser, current: str, new: str) -> bool:
    """Change one's own password; the current one is required (C6) and wrong ones count as
    sign-in failures. Every session of the login ends; the caller starts a fresh one."""
    email = user.email
    if throttle.locked_until("login-email", email):
        return False
    fresh = PortalUser.get_by_id(user.id)
    if not verify_secret(fresh.password_hash, current):
        with write_txn():
            throttle.fail("login-email", email)
            audit.record("account.password_change_failed", fresh, actor=user)
        return False
    new_hash = hash_secret(new)
    with write_txn():
        fresh = _locked_user(user.id)
        fresh.password_hash = new_hash
        fresh.auth_stamp = new_stamp()
        fresh.save()
        auth_service.end_all_sessions(fresh)
        email_templates.queue("password_changed", email, **_email_context(fresh))
        audit.record("account.password_changed", fresh, actor=user)
    return True


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def scope_words(user: PortalUser) -> str:
    """'all sites of Acme' or 'Plant 1 and Plant 2'."""
    if user.site_ids is None:
        return f"all of {user.contact.customer.name}"
    names = [
        s.name for s in Site.select(Site.name).where(Site.id.in_(user.site_ids)).order_by(Site.name)
    ]
    return _join_words(names) if names else "no sites"


PERMISSION_WORDS = {
    "invoices": "can see and pay invoices",
    "statements": "can see statements, aging and payment history",
    "quotes": "can ask for quotes and accept or decline them",
    "orders": "can follow orders and shipments",
    "cases": "can open and follow support cases",
}


def permissions_in_words(user: PortalUser) -> list[str]:
    """What the login may do, one plain sentence per role ('can pay invoices for Plant 1')."""
    values = settings.load()
    scope = scope_words(user)
    lines = []
    for role in PORTAL_ROLES:
        if not user.has_role(role):
            continue
        if role == "company_admin":
            lines.append(
                f"can manage the portal logins of {user.contact.customer.name}"
                + ("" if user.site_ids is None else f" for {scope}")
            )
            continue
        line = f"{PERMISSION_WORDS[role]} for {scope}"
        if not values.get(f"module_{role}", True):
            line += " (this part of the portal is switched off at the moment)"
        lines.append(line)
    return lines


# --- company administration --------------------------------------------------------------


def company_users(customer_id: int) -> list[PortalUser]:
    """Every login of a company, pending approvals first, with their sites."""
    users = list(
        PortalUser.select(PortalUser, Contact)
        .join(Contact)
        .where(Contact.customer == customer_id)
        .order_by(Contact.first_name, Contact.last_name, Contact.email)
    )
    order = {"pending": 0, "active": 1, "invited": 2, "disabled": 3}
    users.sort(key=lambda u: order.get(u.status, 9))
    site_names = {s.id: s.name for s in Site.select().where(Site.customer == customer_id)}
    links = PortalUserSite.select().where(PortalUserSite.user.in_([u.id for u in users] or [0]))
    by_user: dict[int, list[int]] = {}
    for link in links:
        by_user.setdefault(link.user_id, []).append(link.site_id)
    for user in users:
        user._site_ids = None if user.all_sites else sorted(by_user.get(user.id, []))
        user.site_names = None if user.all_sites else sorted(site_names[i] for i in user._site_ids)
    return users


def company_user(customer_id: int, user_id) -> PortalUser | None:
    """A login of this company by id, or None (another company's login is not found)."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    return (
        PortalUser.select(PortalUser, Contact)
        .join(Contact)
        .where((PortalUser.id == user_id) & (Contact.customer == customer_id))
        .first()
    )


class InvitationsThrottled(AccessProblem):
    """The company sent as many invitations as the `invite-company` throttle allows."""

    def __init__(self, until):
        super().__init__(
            None,
            "Your company has sent many invitations recently. Try again after "
            + until.strftime("%H:%M UTC")
            + ", or ask us to send them.",
        )
        self.until = until


def _count_invitation(by, customer_id: int) -> None:
    """A company admin's invitation (or resend) counts against the company (B3); staff and
    the importer are not limited. Raises InvitationsThrottled once the limit is reached."""
    if is_staff(by):
        return
    key = str(customer_id)
    until = throttle.locked_until("invite-company", key)
    if until:
        audit.record("access.invite_throttled", None, actor=by, customer=customer_id)
        raise InvitationsThrottled(until)
    throttle.fail("invite-company", key)


def invite_colleague(by: PortalUser, values: dict, roles, site_ids) -> PortalUser | None:
    """A company admin invites someone by email: the contact is found or created in their own
    company, and invited with roles within the admin's own.

    An address that belongs to another customer's contact is not invited, and the admin is
    not told: the caller answers "invitation sent" either way, so the form cannot tell whose
    address is whose (returns None; audited). Every try counts against the company's
    `invite-company` limit."""
    customer_id = by.contact.customer_id
    email = auth_service.normalize_email(values["email"])
    with write_txn():
        _check_actor(by, customer_id)
        roles = clean_roles(roles, by)
        clean_sites(customer_id, site_ids, by)
        _count_invitation(by, customer_id)
        contact = Contact.get_or_none(Contact.email == email)
        if contact is not None and contact.customer_id != customer_id:
            audit.record(
                "access.invite_other_company", contact, actor=by, email=email, customer=customer_id
            )
            return None
        if contact is None:
            contact = Contact.create(
                customer=customer_id,
                email=email,
                first_name=" ".join((values.get("first_name") or "").split())[:100],
                last_name=" ".join((values.get("last_name") or "").split())[:100],
            )
            audit.record("contact.created", contact, actor=by, source="company admin")
        return _invite_in_txn(contact, roles, site_ids, by)
