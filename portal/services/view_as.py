"""Staff "view as customer" (issue 19): the portal as one login (or the whole account) sees
it, read-only, audited, time-limited, without signing anybody in as the customer.

How it works. Staff start a view from the customer's back-office page: a `ViewAsGrant` row
(who, which customer and login, bound to the staff sign-in by a digest of its session key)
and its id in the staff session. Flask-Login's user loader (`portal.auth`) asks
`seen_as` for every staff session: inside the customer area, while the grant is live, the
request's `current_user` is the viewed login, so every page, query and scope is the
customer's own; the back office keeps the staff user. The customer's sessions, auth stamp,
last sign-in and terms are never touched: nobody signs in.

Read-only three times over: `guard` refuses every non-GET request outside the back office
(403, before any view runs) and every page that is not the signed-in customer area (sign-in,
quick pay, payments); the database connection itself is read-only for the rest of a viewed
request (`PRAGMA query_only` on SQLite, `default_transaction_read_only` on PostgreSQL), so
nothing a page does can be written, and so no email can be queued; and the pages hide their
submit buttons under the banner (`view_as.css`).
"""

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, request, session

from ..db import db, is_sqlite, utcnow, write_txn
from ..models import PORTAL_ROLES, Contact, Customer, PortalUser, StaffUser
from ..models_view_as import ViewAsGrant
from ..security import digest
from . import audit, statements
from . import auth as auth_service

# How long a view lasts before it ends by itself.
VIEW_MINUTES = 30
# The staff session's key holding the grant id.
SESSION_KEY = "_view_as"
# Blueprints outside the back office that are not the signed-in customer area: a viewing
# staff user gets none of them (no sign-in, quick pay, payment, registration or link pages).
# Any other non-staff blueprint is the customer area, so a page added later is viewed too.
NOT_VIEWED = {
    "auth",
    "quickpay",
    "payments",
    "test_checkout",
    "register",
    "access",
    "password",
    "notices",
    "quick_request",
}
# Blueprints that never take part: no user, no database (health checks) or the back office.
IGNORED = {"health"}
WHOLE_ACCOUNT = "Whole account"
READ_ONLY_MESSAGE = (
    "You are viewing the portal as {name} at {company}, read-only: nothing can be changed "
    "here. Stop viewing to go back to the back office."
)


class ViewAsProblem(Exception):
    """A view that cannot start: the message says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class View:
    """A live view of the current request: the grant, the staff user behind it and the login
    whose portal they see."""

    grant: ViewAsGrant
    staff: StaffUser
    user: PortalUser

    @property
    def name(self) -> str:
        return self.user.display_name

    @property
    def company(self) -> str:
        return self.user.customer.name

    @property
    def minutes_left(self) -> int:
        seconds = (self.grant.expires_at - utcnow()).total_seconds()
        return max(1, int(seconds // 60) + (1 if seconds % 60 else 0))


def may_view_as(staff) -> bool:
    """Who may view the portal as a customer: staff who look after customers (admins and
    agents alike, the roles that open a customer's back-office page; docs/design.md)."""
    return bool(staff is not None and staff.is_authenticated and staff.is_staff and staff.active)


def logins_for(customer: Customer):
    """The customer's active logins a view can be as, by name."""
    return (
        PortalUser.select(PortalUser, Contact)
        .join(Contact)
        .where((Contact.customer == customer.id) & (PortalUser.status == "active"))
        .order_by(Contact.first_name, Contact.last_name, Contact.email)
    )


def whole_account_user(customer: Customer) -> PortalUser:
    """A login with every role over the whole account, never saved: what "the whole account"
    sees, and the viewer of the customer's statement on its back-office page. Its id (0)
    matches no row, so nothing personal to a login (a cart, passkeys) is found for it."""
    contact = Contact(id=0, customer=customer, first_name=WHOLE_ACCOUNT, email="")
    return PortalUser(
        id=0,
        contact=contact,
        status="active",
        roles=",".join(PORTAL_ROLES),
        all_sites=True,
        time_zone="",
        auth_stamp="",
    )


def _label(portal_user: PortalUser | None) -> str:
    return portal_user.email if portal_user is not None else WHOLE_ACCOUNT.lower()


def start(staff: StaffUser, customer: Customer, portal_user_id: int) -> ViewAsGrant:
    """Start a view as one of the customer's active logins (0: the whole account); ends the
    staff session's previous view; audited. Raises ViewAsProblem when it cannot start."""
    if not may_view_as(staff):
        raise ViewAsProblem("Your back-office login may not view the portal as a customer.")
    if not customer.portal_enabled:
        raise ViewAsProblem(f"{customer.name} does not use the portal, so there is nothing to see.")
    portal_user = None
    if portal_user_id:
        portal_user = logins_for(customer).where(PortalUser.id == portal_user_id).first()
        if portal_user is None:
            raise ViewAsProblem("Choose one of this customer's active logins.")
    now = utcnow()
    with write_txn():
        _end_previous(staff, now)
        grant = ViewAsGrant.create(
            staff_user=staff.id,
            customer=customer.id,
            portal_user=portal_user.id if portal_user else None,
            session_hash=digest(staff.session_key),
            started_at=now,
            expires_at=now + timedelta(minutes=VIEW_MINUTES),
        )
        audit.record(
            "view_as.started",
            customer,
            actor=staff,
            login=_label(portal_user),
            grant=grant.id,
            minutes=VIEW_MINUTES,
        )
    session[SESSION_KEY] = grant.id
    return grant


def _end_previous(staff, now) -> None:
    """End the view this staff session had open, if any (inside the caller's transaction)."""
    previous = session.get(SESSION_KEY)
    if previous:
        grant = ViewAsGrant.get_or_none(ViewAsGrant.id == previous)
        if grant is not None and grant.staff_user_id == staff.id and grant.ended_at is None:
            _end(grant, "replaced", staff, now)


def _end(grant: ViewAsGrant, reason: str, staff, now) -> bool:
    """Mark the grant ended and audit it, once (inside the caller's transaction)."""
    ended = (
        ViewAsGrant.update(ended_at=now, end_reason=reason)
        .where((ViewAsGrant.id == grant.id) & ViewAsGrant.ended_at.is_null())
        .execute()
    )
    if ended:
        grant.ended_at, grant.end_reason = now, reason
        portal_user = PortalUser.get_or_none(PortalUser.id == grant.portal_user_id)
        audit.record(
            "view_as.stopped",
            Customer.get_by_id(grant.customer_id),
            actor=staff,
            login=_label(portal_user) if grant.portal_user_id else _label(None),
            grant=grant.id,
            reason=reason,
        )
    return bool(ended)


def stop(staff: StaffUser) -> ViewAsGrant | None:
    """End this staff session's view (audited); returns its grant, or None if none was open."""
    grant_id = session.pop(SESSION_KEY, None)
    grant = ViewAsGrant.get_or_none(ViewAsGrant.id == grant_id) if grant_id else None
    if grant is None or grant.staff_user_id != staff.id:
        return None
    with write_txn():
        _end(grant, "stopped", staff, utcnow())
    return grant


def in_customer_area() -> bool:
    """True when this request is a page of the signed-in customer area (what a view sees)."""
    blueprint = request.blueprint or ""
    return bool(blueprint) and not _back_office(blueprint) and blueprint not in NOT_VIEWED | IGNORED


def _back_office(blueprint: str) -> bool:
    return blueprint == "staff" or blueprint.startswith("staff_")


def _live_grant(staff: StaffUser, grant_id) -> ViewAsGrant | None:
    """The grant when it is this staff sign-in's own, not ended and not expired."""
    grant = ViewAsGrant.get_or_none(ViewAsGrant.id == grant_id)
    if grant is None or grant.staff_user_id != staff.id or grant.ended_at is not None:
        return None
    if grant.session_hash != digest(staff.session_key or ""):
        return None
    if grant.expires_at <= utcnow():
        return None
    if current_app.config["STAFF_MFA"] == "required":
        from ..auth import TWO_STEP_KEY

        if not session.get(TWO_STEP_KEY):
            return None
    return grant


def _viewed_user(grant: ViewAsGrant) -> PortalUser | None:
    """The login the grant views, as Flask-Login would load it; None once it cannot be
    viewed any more (disabled, moved, the customer's portal turned off)."""
    customer = Customer.get_or_none(Customer.id == grant.customer_id)
    if customer is None or not customer.portal_enabled:
        return None
    if grant.portal_user_id is None:
        return whole_account_user(customer)
    user = auth_service.find_portal_user_by_id(grant.portal_user_id)
    if user is None or not user.is_active or user.contact.customer_id != customer.id:
        return None
    return user


def seen_as(staff: StaffUser):
    """The user a staff session's request acts as (Flask-Login's loader asks): the viewed
    login inside the customer area while a view is live, else the staff user."""
    grant_id = session.get(SESSION_KEY)
    if not grant_id:
        return staff
    grant = _live_grant(staff, grant_id)
    user = _viewed_user(grant) if grant is not None else None
    if grant is None or user is None:
        g.view_as_lapsed = grant_id
        return staff
    user.session_key = None  # nothing can end or rotate a customer session through it
    user.viewed_by = staff
    g.view_as = View(grant=grant, staff=staff, user=user)
    return user if in_customer_area() else staff


def current() -> View | None:
    """The live view of this request, if any (after the user was loaded)."""
    return g.get("view_as")


def lapsed(staff) -> ViewAsGrant | None:
    """A view this session still names but that ended or expired: forgotten from the session,
    and an expiry recorded (audited) once. Returns the grant for the notice."""
    grant_id = g.pop("view_as_lapsed", None)
    if not grant_id:
        return None
    session.pop(SESSION_KEY, None)
    grant = ViewAsGrant.get_or_none(ViewAsGrant.id == grant_id)
    if grant is None or grant.staff_user_id != staff.id:
        return None
    if grant.ended_at is None:
        reason = "expired" if grant.expires_at <= utcnow() else "unavailable"
        with write_txn():
            _end(grant, reason, staff, utcnow())
    return grant


def refusal(view: View) -> str:
    """The message of a refused request while viewing."""
    return READ_ONLY_MESSAGE.format(name=view.name, company=view.company)


def read_only_connection(on: bool) -> None:
    """Make this request's database connection read-only (or writable again): a viewed page
    cannot write even by mistake. Pooled connections are handed back writable."""
    if is_sqlite():
        db.execute_sql("PRAGMA query_only = 1" if on else "PRAGMA query_only = 0")
    else:
        db.execute_sql(
            "SET default_transaction_read_only = on"
            if on
            else "SET default_transaction_read_only = off"
        )


def customer_statement(customer: Customer, args) -> dict:
    """The customer's statement as its own statement page shows it (the same service, the
    whole account's viewer), for the range in `args` (`start`, `end`, `statement_page`)."""
    start, end, errors = statements.parse_range(args)
    result = None if errors else statements.statement(whole_account_user(customer), start, end)
    try:
        number = max(1, int(args.get("statement_page", "1")))
    except ValueError:
        number = 1
    return {
        "start": start,
        "end": end,
        "errors": errors,
        "result": result,
        "lines": statements.statement_page(result, number) if result else None,
        "raw": {k: args.get(k, "") for k in ("start", "end")},
    }


def discard_connection() -> None:
    """Close this request's connection for good instead of handing it back to the pool."""
    closer = getattr(db.obj, "manual_close", None)
    if closer is not None:
        closer()
    else:
        db.close()
