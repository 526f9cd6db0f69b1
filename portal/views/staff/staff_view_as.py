"""Staff "view as customer" (issue 19): start and stop a read-only view of the portal, and
the app-wide hooks that keep a view read-only, marked and time-limited."""

import logging

from flask import Blueprint, abort, flash, g, redirect, request, session, url_for
from flask_login import current_user

from ...forms.view_as import ViewAsForm
from ...models import Customer
from ...services import view_as
from ...web import redirect_to
from ._common import get_or_404, guard, me

log = logging.getLogger(__name__)

bp = Blueprint("staff_view_as", __name__, url_prefix="/staff/view-as")
guard(bp)


@bp.post("/customers/<int:customer_id>")
def start(customer_id):
    """Start viewing the portal as one of the customer's logins, or the whole account."""
    customer = get_or_404(Customer, customer_id)
    form = ViewAsForm().offer(view_as.logins_for(customer))
    back = url_for("staff_customers.show", customer_id=customer.id) + "#view-as"
    if not form.validate():
        flash("Choose one of this customer's active logins.", "error")
        return redirect_to(back)
    try:
        view_as.start(me(), customer, form.login.data)
    except view_as.ViewAsProblem as problem:
        flash(problem.message, "error")
        return redirect_to(back)
    return redirect_to(url_for("home.index"))


@bp.post("/stop")
def stop():
    """Stop viewing: back to the customer's page in the back office."""
    grant = view_as.stop(me())
    if grant is None:
        return redirect_to(url_for("staff_customers.index"))
    flash("You stopped viewing the portal as the customer.", "success")
    return redirect_to(url_for("staff_customers.show", customer_id=grant.customer_id))


@bp.before_app_request
def keep_read_only():
    """While a view is live: refuse every change outside the back office, and every page that
    is not the customer area, before any view runs; a viewed page gets a read-only database
    connection. A view that ended sends its customer pages back to the back office."""
    if not request.blueprint or request.blueprint in view_as.IGNORED:
        return None
    if view_as.SESSION_KEY not in session:
        return None
    user = current_user._get_current_object()  # the loader decides the view
    view = view_as.current()
    staff = view.staff if view else user
    if not getattr(staff, "is_staff", False):
        return None
    if view is None:
        grant = view_as.lapsed(staff)
        if grant is not None and view_as.in_customer_area() and request.method == "GET":
            flash(
                f"Your read-only view ended ({grant.end_reason or 'stopped'}). "
                "Start it again from the customer's page.",
                "info",
            )
            return redirect(url_for("staff_customers.show", customer_id=grant.customer_id))
        return None
    if view_as._back_office(request.blueprint):
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS") or not view_as.in_customer_area():
        g._login_user = view.staff  # the refusal is logged as the staff user's
        abort(403, view_as.refusal(view))
    view_as.read_only_connection(True)
    g.view_as_read_only = True
    return None


@bp.teardown_app_request
def writable_again(_error=None):
    """A pooled connection goes back writable (before the connection is handed back)."""
    if g.pop("view_as_read_only", False):
        try:
            view_as.read_only_connection(False)
        except Exception:  # never hand a read-only connection to the next request
            log.exception("could not make the connection writable again; closing it")
            view_as.discard_connection()


@bp.app_context_processor
def banner():
    """`viewing_as` for the banner every page shows while a view is live."""
    view = view_as.current()
    if view is None:
        return {"viewing_as": None}
    return {"viewing_as": view, "view_as_in_portal": view_as.in_customer_area()}


def customer_page(customer) -> dict:
    """What the staff customer page adds: the "View as customer" form and the customer's
    statement for the chosen period (the customer's own statement, never a second sum)."""
    return {
        "view_as_form": ViewAsForm(formdata=None).offer(view_as.logins_for(customer))
        if view_as.may_view_as(current_user)
        else None,
        "view_minutes": view_as.VIEW_MINUTES,
        "statement": view_as.customer_statement(customer, request.args),
    }
