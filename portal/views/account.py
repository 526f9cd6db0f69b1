"""My account: profile and time zone, password, and what this login may do, in plain words."""

from flask import Blueprint, flash, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms.access import ChangePasswordForm, ProfileForm
from ..models import PortalUser
from ..services import access, settings
from ..web import redirect_to, render
from .auth import sign_in

bp = Blueprint("account", __name__, url_prefix="/account")


def _profile_form(**kwargs) -> ProfileForm:
    return ProfileForm(business_zone=settings.get("time_zone"), **kwargs)


def _page(profile=None, password=None, status=200, block=None):
    user = current_user
    return render(
        "account/index.html",
        block=block,
        status=status,
        user=user,
        profile=profile or _profile_form(obj=user.contact, formdata=None, time_zone=user.time_zone),
        password_form=password or ChangePasswordForm(formdata=None),
        permissions=access.permissions_in_words(user),
        role_labels=access.ROLE_LABELS,
    )


@bp.get("/")
@customer_required()
def index():
    """Profile, password and permissions."""
    return _page()


@bp.post("/profile")
@customer_required()
def update():
    """Save the name, phone and time zone."""
    form = _profile_form()
    if not form.validate():
        return _page(profile=form, status=422, block="profile")
    if access.update_profile(current_user, form.data):
        flash("Your details are saved.", "success")
    return redirect_to(url_for("account.index"))


@bp.post("/password")
@customer_required()
def password():
    """Change the password: the current one first; every other browser is signed out."""
    form = ChangePasswordForm()
    if not form.validate():
        return _page(password=form, status=422, block="password")
    if not access.change_password(current_user, form.current_password.data, form.password.data):
        form.current_password.errors.append(
            "That is not your current password (or there were too many tries; wait a while)."
        )
        return _page(password=form, status=422, block="password")
    user = PortalUser.get_by_id(current_user.id)
    response = sign_in(user, url_for("account.index"))
    flash("Your password is changed. Every other browser was signed out.", "success")
    return response
