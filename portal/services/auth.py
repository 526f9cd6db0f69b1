"""Sign-in, server-side sessions and password changes for portal users and staff."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, request
from peewee import JOIN

from ..db import Slot, prepared, utcnow, write_txn
from ..models import Contact, Customer, LoginSession, PortalUser, StaffUser
from ..security import digest, hash_secret, needs_rehash, new_stamp, verify_secret
from . import audit, backoff, throttle


@dataclass
class SignInResult:
    user: PortalUser | StaffUser | None = None
    locked_until: datetime | None = None


def normalize_email(email: str) -> str:
    """Emails are matched case-insensitively and stored lower-case."""
    return (email or "").strip().lower()


def find_portal_user(email: str) -> PortalUser | None:
    """The portal user whose contact has this email."""
    return (
        PortalUser.select(PortalUser, Contact)
        .join(Contact)
        .where(Contact.email == normalize_email(email))
        .first()
    )


def find_portal_user_by_id(user_id: int) -> PortalUser | None:
    """A portal user with its contact and customer."""
    return (
        PortalUser.select(PortalUser, Contact, Customer)
        .join(Contact)
        .join(Customer)
        .where(PortalUser.id == user_id)
        .first()
    )


def find_staff_user(email: str) -> StaffUser | None:
    """The staff user with this email."""
    return StaffUser.get_or_none(StaffUser.email == normalize_email(email))


# An address that signed in to a login this recently is that login's own: others' failures
# never pause it (issue 16, finding 5).
TRUSTED_FOR = timedelta(days=30)


def _login_key(email: str, staff: bool) -> str:
    """The back-off key of a login: the customer form never counts against a staff login
    with the same email, nor the other way round."""
    return ("staff:" if staff else "customer:") + email


def signed_in_from(user, ip: str, now: datetime | None = None) -> bool:
    """Whether this login signed in from this client address within TRUSTED_FOR."""
    if user is None or not ip:
        return False
    field = LoginSession.staff_user if user.is_staff else LoginSession.portal_user
    since = (now or utcnow()) - TRUSTED_FOR
    return (
        LoginSession.select(LoginSession.id)
        .where((field == user.id) & (LoginSession.ip == ip) & (LoginSession.created_at > since))
        .exists()
    )


def authenticate(email: str, password: str, staff: bool = False) -> SignInResult:
    """Check a sign-in; failures pause further tries with growing pauses (C2).

    Per login and client address (`signin-pair`), per login from addresses that have not
    signed in to it lately (`signin-login`), and per address over every login (`login-ip`).
    An address that signed in to the login within TRUSTED_FOR only meets its own pair's
    pause. The answer never says which part was wrong, and an unknown email does the same
    argon2 work as a wrong password.
    """
    email = normalize_email(email)
    ip = audit.client_ip()
    login_key = _login_key(email, staff)
    pair_key = f"{login_key}|{ip}"
    user = find_staff_user(email) if staff else find_portal_user(email)
    trusted = signed_in_from(user, ip)
    until = backoff.paused_until("signin-pair", pair_key)
    if not trusted:
        until = (
            until
            or backoff.paused_until("signin-login", login_key)
            or throttle.locked_until("login-ip", ip)
        )
    if until:
        return SignInResult(locked_until=until)
    ok = verify_secret(user.password_hash if user else None, password)
    usable = ok and user.is_active and (staff or user.contact.customer.portal_enabled)
    # Raised argon2 parameters reach old hashes at the next sign-in (C4); hashed before the
    # transaction so the write lock is not held for the argon2 work.
    rehashed = hash_secret(password) if usable and needs_rehash(user.password_hash) else None
    with write_txn():
        if usable:
            backoff.clear("signin-pair", pair_key)
            if rehashed:
                model = type(user)
                model.update(password_hash=rehashed).where(model.id == user.id).execute()
                user.password_hash = rehashed
            return SignInResult(user=user)
        until = backoff.fail("signin-pair", pair_key)
        if not trusted:
            until = backoff.fail("signin-login", login_key) or until
        until = throttle.fail("login-ip", ip) or until
        audit.record("auth.sign_in_failed", user, email=email, staff=staff)
    return SignInResult(locked_until=until)


def lift_pauses(user) -> None:
    """A password set through an emailed link proves the mailbox: the login's pauses end,
    for its own and for this client address (inside or outside a transaction)."""
    login_key = _login_key(normalize_email(user.email), user.is_staff)
    backoff.clear("signin-login", login_key)
    backoff.clear("signin-pair", f"{login_key}|{audit.client_ip()}")


def start_session(user) -> str:
    """Create a server-side session row for a signed-in user; returns the key for the cookie."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    with write_txn():
        LoginSession.create(
            key_hash=digest(key),
            portal_user=None if user.is_staff else user,
            staff_user=user if user.is_staff else None,
            created_at=now,
            last_seen_at=now,
            expires_at=now + current_app.config["SESSION_LIFETIME"],
            ip=audit.client_ip(),
            user_agent=(request.user_agent.string or "")[:255],
        )
        type(user).update(last_login_at=now).where(type(user).id == user.id).execute()
        audit.record("auth.signed_in", user, actor=user)
    user.session_key = key
    return key


@prepared
def _session_by_key():
    """One query for the session, its user, contact and customer: it runs on every request,
    so it is compiled once (`prepared`)."""
    return (
        LoginSession.select(LoginSession, PortalUser, Contact, Customer, StaffUser)
        .join(PortalUser, JOIN.LEFT_OUTER)
        .join(Contact, JOIN.LEFT_OUTER)
        .join(Customer, JOIN.LEFT_OUTER)
        .switch(LoginSession)
        .join(StaffUser, JOIN.LEFT_OUTER)
        .where((LoginSession.key_hash == Slot("key")) & LoginSession.revoked_at.is_null())
        .limit(1)
    )


def load_session_user(key: str):
    """The user behind a session key, if the session is live; touches its last-seen time."""
    if not key:
        return None
    session = _session_by_key.first(key=digest(key))
    now = utcnow()
    if session is None or session.expires_at <= now:
        return None
    if session.last_seen_at <= now - current_app.config["SESSION_IDLE_TIMEOUT"]:
        return None
    user = session.staff_user if session.staff_user_id else session.portal_user
    if not user.is_active:
        return None
    if not user.is_staff and not user.contact.customer.portal_enabled:
        return None
    # Touch at most once a minute: a write per request would serialise SQLite readers.
    if (now - session.last_seen_at).total_seconds() > 60:
        LoginSession.update(last_seen_at=now).where(LoginSession.id == session.id).execute()
    user.session_key = key
    return user


def end_session(key: str | None) -> None:
    """Revoke one session server-side (sign-out)."""
    if not key:
        return
    with write_txn():
        revoked = (
            LoginSession.update(revoked_at=utcnow())
            .where((LoginSession.key_hash == digest(key)) & LoginSession.revoked_at.is_null())
            .execute()
        )
        if revoked:
            audit.record("auth.signed_out")


def end_all_sessions(user) -> int:
    """Revoke every session of a user (inside the caller's transaction)."""
    field = LoginSession.staff_user if user.is_staff else LoginSession.portal_user
    return (
        LoginSession.update(revoked_at=utcnow())
        .where((field == user.id) & LoginSession.revoked_at.is_null())
        .execute()
    )


def set_password(user, password: str) -> None:
    """Set a new password (inside the caller's transaction): rotates the stamp, ends sessions."""
    user.password_hash = hash_secret(password)
    user.auth_stamp = new_stamp()
    user.save()
    end_all_sessions(user)


def create_staff(email: str, password: str, name: str = "", admin: bool = False) -> StaffUser:
    """Create a back-office login (used by `flask create-staff`)."""
    with write_txn():
        return StaffUser.create(
            email=normalize_email(email),
            name=name,
            password_hash=hash_secret(password),
            role="admin" if admin else "agent",
            auth_stamp=new_stamp(),
        )
