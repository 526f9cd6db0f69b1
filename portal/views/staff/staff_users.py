"""Back-office logins (staff admins): create, change role, set a password, deactivate; and
resetting a customer login's two-step sign-in."""

from flask import Blueprint, abort, flash, request, url_for

from ...auth import fresh_required
from ...forms import ActionForm
from ...forms.staff import StaffCreateForm, StaffEditForm, StaffPasswordForm
from ...models import PortalUser, StaffUser
from ...services import auth as auth_service
from ...services import backoffice, passkeys, two_step
from ...services.backoffice import Problem
from ...web import redirect_to, render
from ._common import attach, get_or_404, guard, me

bp = Blueprint("staff_users", __name__, url_prefix="/staff/users")
guard(bp, admin=True)


@bp.get("/")
def index():
    """Every back-office login."""
    return render("staff/users/index.html", users=list(backoffice.staff_list()))


@bp.route("/new", methods=["GET", "POST"])
@fresh_required
def new():
    """Create a back-office login with a first password."""
    form = StaffCreateForm()
    if request.method == "POST" and form.validate():
        try:
            user = backoffice.create_staff_user(
                form.email.data, form.name.data or "", form.role.data, form.password.data, me()
            )
        except Problem as problem:
            attach(form, problem)
        else:
            flash(f"{user.email} can now sign in to the back office.", "success")
            return redirect_to(url_for("staff_users.index"))
    status = 422 if request.method == "POST" else 200
    return render("staff/users/new.html", block="form", status=status, form=form)


def _edit_page(user, form=None, password_form=None, status=200):
    return render(
        "staff/users/edit.html",
        status=status,
        user=user,
        form=form or StaffEditForm(obj=user),
        password_form=password_form or StaffPasswordForm(),
        action_form=ActionForm(),
    )


@bp.get("/<int:user_id>")
def edit(user_id):
    """A staff login: name, role, password and whether it may sign in."""
    return _edit_page(get_or_404(StaffUser, user_id))


@bp.post("/<int:user_id>")
@fresh_required
def update(user_id):
    """Change name or role (the last active admin stays an admin)."""
    user = get_or_404(StaffUser, user_id)
    form = StaffEditForm()
    if form.validate():
        try:
            changed = backoffice.update_staff_user(user, form.name.data or "", form.role.data, me())
        except Problem as problem:
            attach(form, problem)
        else:
            flash("Saved." if changed else "Nothing changed.", "success")
            return redirect_to(url_for("staff_users.edit", user_id=user.id))
    return _edit_page(user, form=form, status=422)


@bp.post("/<int:user_id>/password")
@fresh_required
def password(user_id):
    """Set a new password; every session of that login ends."""
    user = get_or_404(StaffUser, user_id)
    form = StaffPasswordForm()
    if not form.validate():
        return _edit_page(user, password_form=form, status=422)
    backoffice.reset_staff_password(user, form.password.data, me())
    auth_service.lift_pauses(user)
    flash("New password set; their sessions have ended.", "success")
    return redirect_to(url_for("staff_users.edit", user_id=user.id))


@bp.post("/<int:user_id>/active")
@fresh_required
def set_active(user_id):
    """Deactivate (ending every session) or reactivate a staff login."""
    user = get_or_404(StaffUser, user_id)
    ActionForm().validate()
    active = request.form.get("active") == "1"
    try:
        backoffice.set_staff_active(user, active, me())
    except Problem as problem:
        flash(problem.message, "error")
    else:
        flash("Login reactivated." if active else "Login deactivated.", "success")
    return redirect_to(url_for("staff_users.edit", user_id=user.id))


@bp.post("/<int:user_id>/two-step/reset")
@fresh_required
def reset_two_step(user_id):
    """Forget a login's authenticator app (a lost phone); its sessions end, and its next
    sign-in sets up a new one when two-step is required."""
    user = get_or_404(StaffUser, user_id)
    ActionForm().validate()
    two_step.reset(user, me())
    flash("Two-step sign-in reset; their sessions have ended.", "success")
    return redirect_to(url_for("staff_users.edit", user_id=user.id))


@bp.get("/customer-two-step")
def customer_two_step():
    """Find a customer login by its email, to reset its two-step sign-in."""
    email = auth_service.normalize_email(request.args.get("email", ""))[:320]
    user = auth_service.find_portal_user(email) if email else None
    methods = None
    if user is not None:
        methods = {
            "app": two_step.has_authenticator(user),
            "passkeys": len(passkeys.passkeys_of(user)),
            "codes": two_step.recovery_codes_left(user),
            "required": two_step.company_requires(user.contact.customer_id),
        }
    return render(
        "staff/users/customer_two_step.html",
        email=email,
        user=user,
        methods=methods,
        action_form=ActionForm(),
    )


@bp.post("/customer-two-step/<int:user_id>/reset")
@fresh_required
def reset_customer_two_step(user_id):
    """Forget a customer login's authenticator app, passkeys and recovery codes (a lost
    phone): its sessions end, the customer is emailed, and it is in the audit log."""
    user = get_or_404(PortalUser, user_id)
    if not ActionForm().validate():
        abort(400)
    two_step.reset(user, me())
    flash(f"Two-step sign-in of {user.email} reset; they were emailed.", "success")
    return redirect_to(url_for("staff_users.customer_two_step", email=user.email))
