"""My account: profile and time zone, password, and what this login may do, in plain words."""

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..forms.access import ChangePasswordForm, ProfileForm
from ..models import PortalUser
from ..services import access, saved_methods, settings
from ..web import redirect_away, redirect_to, render
from .auth import sign_in

bp = Blueprint("account", __name__, url_prefix="/account")


def _profile_form(**kwargs) -> ProfileForm:
    return ProfileForm(business_zone=settings.get("time_zone"), **kwargs)


def _page(profile=None, password=None, status=200, block=None, card_error=""):
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
        **_methods_context(user, card_error),
    )


def _methods_context(user, error: str = "") -> dict:
    """The company's saved cards, for a login that pays invoices, when Stripe is on."""
    if not (saved_methods.enabled() and user.has_role("invoices")):
        return {"cards": None}
    return {
        "cards": saved_methods.methods_for(user.contact.customer_id),
        "card_consent": saved_methods.consent_text(user.customer),
        "card_error": error,
        "action_form": ActionForm(),
    }


def _cards_or_404():
    if not (saved_methods.enabled() and current_user.has_role("invoices")):
        abort(404)


@bp.post("/cards")
@customer_required()
def save_card():
    """Save a card for the company: explicit consent, then Stripe's own page."""
    _cards_or_404()
    if not ActionForm().validate():
        abort(400)
    try:
        url = saved_methods.start_saving(current_user, request.form.get("consent") == "yes")
    except saved_methods.SavedMethodError as exc:
        return _page(status=422, card_error=str(exc))
    return redirect_away(url)


@bp.get("/cards/saved")
@customer_required()
def card_saved():
    """Back from Stripe's page: the card is recorded with the consent given."""
    _cards_or_404()
    saved = saved_methods.finish_saving(current_user, request.args.get("session_id", ""))
    if saved is None:
        flash("No card was saved.", "info")
    else:
        flash(f"{saved.label} is saved. Choose it when you pay.", "success")
    return redirect_to(url_for("account.index") + "#payment-methods")


@bp.post("/cards/remove")
@customer_required()
def remove_card():
    """Remove a saved card (here and at Stripe)."""
    _cards_or_404()
    method = saved_methods.method_for(
        current_user.contact.customer_id, request.form.get("saved_method", "")
    )
    if method is None or not ActionForm().validate():
        abort(404)
    saved_methods.remove(current_user, method)
    flash(f"{method.label} is removed.", "success")
    return redirect_to(url_for("account.index") + "#payment-methods")


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
