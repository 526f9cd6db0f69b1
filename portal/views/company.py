"""Company administration: the company's portal logins, for its company administrators."""

import logging

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..forms.access import InviteForm, UserAccessForm
from ..models import Site
from ..services import access
from ..services import auth as auth_service
from ..web import redirect_to, render

bp = Blueprint("company", __name__, url_prefix="/company")
log = logging.getLogger(__name__)


def _customer_id() -> int:
    return current_user.contact.customer_id


def _sites():
    """The sites this admin may hand out: all the company's, or their own when limited."""
    query = Site.select().where(Site.customer == _customer_id()).order_by(Site.name)
    if current_user.site_ids is not None:
        query = query.where(Site.id.in_(current_user.site_ids))
    return list(query)


def _user_or_404(user_id):
    user = access.company_user(_customer_id(), user_id)
    if user is None:
        abort(404)  # logged as a denied attempt (E7) by the error handler
    return user


def _scope_from(form):
    roles = form.roles.data or []
    sites = None if form.all_sites.data else [int(s) for s in form.sites.data or []]
    return roles, sites


def _field_error(form, problem):
    name = {"sites": "sites", "roles": "roles", "email": "email"}.get(problem.field)
    if name and hasattr(form, name):
        getattr(form, name).errors.append(problem.message)
    else:
        form.form_errors.append(problem.message)


@bp.get("/")
@customer_required("company_admin")
def index():
    """Who has access, what they may do, and when each last signed in."""
    users = access.company_users(_customer_id())
    return render(
        "company/index.html",
        users=users,
        pending=[u for u in users if u.status == "pending"],
        customer=current_user.customer,
        role_labels=access.ROLE_LABELS,
        status_labels=access.STATUS_LABELS,
        action_form=ActionForm(),
    )


@bp.route("/users/new", methods=["GET", "POST"])
@customer_required("company_admin")
def new():
    """Invite a colleague with roles within the admin's own."""
    form = InviteForm()
    form.limit_to(current_user.role_set, _sites(), current_user.site_ids)
    if request.method == "POST" and form.validate():
        roles, sites = _scope_from(form)
        try:
            access.invite_colleague(current_user, form.data, roles, sites)
        except access.InvitationsThrottled as problem:
            _field_error(form, problem)
            return render("company/new.html", block="form", status=429, form=form)
        except access.AccessProblem as problem:
            _field_error(form, problem)
        else:
            # The same words whether or not the address could be invited here (another
            # customer's contact is not): the form reveals nothing about other companies.
            email = auth_service.normalize_email(form.email.data)
            flash(f"Invitation sent to {email}.", "success")
            return redirect_to(url_for("company.index"))
    status = 422 if request.method == "POST" else 200
    return render("company/new.html", block="form", status=status, form=form)


@bp.route("/users/<opaque('portal_user'):user_id>", methods=["GET", "POST"])
@customer_required("company_admin")
def edit(user_id):
    """Change what a colleague may do and which sites they see."""
    user = _user_or_404(user_id)
    if request.method == "GET":
        form = UserAccessForm(
            formdata=None,
            roles=sorted(user.role_set),
            all_sites=user.site_ids is None,
            sites=[str(i) for i in user.site_ids or []],
        )
    else:
        form = UserAccessForm()
    form.limit_to(current_user.role_set | user.role_set, _sites(), current_user.site_ids)
    if request.method == "POST" and form.validate():
        roles, sites = _scope_from(form)
        try:
            access.set_access(user, roles, sites, current_user)
        except access.AccessProblem as problem:
            _field_error(form, problem)
        else:
            flash(f"Access of {user.display_name} is saved.", "success")
            return redirect_to(url_for("company.index"))
    status = 422 if request.method == "POST" else 200
    return render("company/edit.html", block="form", status=status, form=form, person=user)


ACTIONS = {
    "deactivate": (access.deactivate, "{} can no longer sign in."),
    "reactivate": (access.reactivate, "{} has access again."),
    "resend": (access.resend_invitation, "A new invitation is on its way to {}."),
    "approve": (access.approve_registration, "{} is approved and gets a link to set a password."),
    "reject": (access.reject_registration, "The registration of {} is turned down."),
}


def _act(action: str, user_id: int):
    user = _user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    service, done = ACTIONS[action]
    try:
        service(user, current_user)
    except access.AccessProblem as problem:
        flash(problem.message, "error")
    else:
        flash(done.format(user.display_name), "success")
    return redirect_to(url_for("company.index"))


@bp.post("/users/<opaque('portal_user'):user_id>/deactivate")
@customer_required("company_admin")
def deactivate(user_id):
    """Switch a colleague's login off (or revoke an invitation)."""
    return _act("deactivate", user_id)


@bp.post("/users/<opaque('portal_user'):user_id>/reactivate")
@customer_required("company_admin")
def reactivate(user_id):
    """Switch a colleague's login back on."""
    return _act("reactivate", user_id)


@bp.post("/users/<opaque('portal_user'):user_id>/resend")
@customer_required("company_admin")
def resend(user_id):
    """Send a colleague's invitation again."""
    return _act("resend", user_id)


@bp.post("/users/<opaque('portal_user'):user_id>/approve")
@customer_required("company_admin")
def approve(user_id):
    """Approve a pending self-registration."""
    return _act("approve", user_id)


@bp.post("/users/<opaque('portal_user'):user_id>/reject")
@customer_required("company_admin")
def reject(user_id):
    """Turn down a pending self-registration."""
    return _act("reject", user_id)
