"""My account: profile and time zone, password, and what this login may do, in plain words."""

from flask import Blueprint, abort, flash, request, session, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..forms.access import ChangePasswordForm, ProfileForm
from ..forms.two_step import CompanyRuleForm, CurrentPasswordForm
from ..models import PortalUser
from ..security import seal, unseal
from ..services import access, contact_notices, passkeys, saved_methods, settings
from ..services import auth as auth_service
from ..services import two_step as two_step_service
from ..web import redirect_away, redirect_to, render
from .auth import authenticator_context, enroll_code, full_load, json_answer, sign_in

bp = Blueprint("account", __name__, url_prefix="/account")


def _profile_form(**kwargs) -> ProfileForm:
    return ProfileForm(business_zone=settings.get("time_zone"), **kwargs)


def _page(profile=None, password=None, status=200, block=None, card_error="", security=None):
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
        **_security_context(user, **(security or {})),
        **_notices_context(user),
    )


def _notices_context(user) -> dict:
    """The login's email notices: one checkbox per topic, and what is always sent."""
    return {
        "notice_choices": contact_notices.for_contact(user.contact),
        "notices_form": ActionForm(),
        "always_sent": contact_notices.ALWAYS_SENT,
    }


@bp.post("/notices")
@customer_required()
def notices():
    """Save which emails this login's contact gets (each change audited)."""
    if not ActionForm().validate():
        abort(400)
    wanted = set(request.form.getlist("topic"))
    changed = contact_notices.save(me().contact, wanted, me())
    flash(
        "Your email choices are saved." if changed else "Your email choices are unchanged.",
        "success" if changed else "info",
    )
    return redirect_to(url_for("account.index") + "#email-notices")


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
    return full_load() or _page()


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


# --- sign-in security: two-step sign-in -----------------------------------------------------

SECURITY = "#sign-in-security"


def me() -> PortalUser:
    """The signed-in login itself (not Flask-Login's proxy), for services and the audit."""
    return current_user._get_current_object()


def _security_context(user, password_form=None, rule_form=None) -> dict:
    """The login's second steps, its recovery codes and, for a company admin, the rule."""
    customer_id = user.contact.customer_id
    required = two_step_service.company_requires(customer_id)
    return {
        "two_step": {
            "app": two_step_service.has_authenticator(user),
            "passkeys": passkeys.passkeys_of(user),
            "codes_left": two_step_service.recovery_codes_left(user),
            "required": required,
            "can_require": user.has_role("company_admin"),
        },
        "security_password_form": password_form or CurrentPasswordForm(formdata=None),
        "rule_form": rule_form or CompanyRuleForm(formdata=None, required=required),
    }


def _password_ok(form) -> bool:
    """The login's own password, typed again (failures count like sign-in failures)."""
    if not form.validate():
        return False
    result = auth_service.authenticate(me().email, form.password.data)
    if result.user is not None and result.user.id == me().id:
        return True
    form.password.errors = [
        "That is not your password (or there were too many tries; wait a while)."
    ]
    return False


def _would_leave_none(user, removing_app: bool = False, removing_passkey: bool = False) -> bool:
    """Whether a removal leaves no second step while the company requires one."""
    if not two_step_service.company_requires(user.contact.customer_id):
        return False
    app = two_step_service.has_authenticator(user) and not removing_app
    keys = len(passkeys.passkeys_of(user)) - (1 if removing_passkey else 0)
    return not app and keys <= 0


REQUIRED_NOTICE = (
    "Your company requires two-step sign-in: add another passkey or an authenticator app "
    "before you remove this one."
)
APP_SECRET = "_account_totp"


@bp.route("/two-step/app", methods=["GET", "POST"])
@customer_required()
def authenticator():
    """Set up an authenticator app: scan the QR code, prove it with a code."""
    user = me()
    if two_step_service.has_authenticator(user):
        return redirect_to(url_for("account.index") + SECURITY)
    secret = unseal(session.get(APP_SECRET, ""))
    if not secret:
        secret = two_step_service.new_secret()
        session[APP_SECRET] = seal(secret)
    form, status = enroll_code(user, secret)
    if form is None:
        session.pop(APP_SECRET, None)
        flash(_enabled_notice(user, "Your authenticator app is on."), "success")
        return redirect_to(url_for("account.index") + SECURITY)
    return render(
        "account/two_step_app.html",
        block="form",
        status=status,
        form=form,
        user=user,
        **authenticator_context(secret, user.email),
    )


def _enabled_notice(user, first: str) -> str:
    if two_step_service.recovery_codes_left(user):
        return first
    return first + " Now create your recovery codes, for the day it is not at hand."


@bp.post("/two-step/app/off")
@customer_required()
def authenticator_off():
    """Remove the authenticator app (the password first)."""
    form = CurrentPasswordForm()
    if not _password_ok(form):
        return _page(status=422, security={"password_form": form})
    if _would_leave_none(me(), removing_app=True):
        flash(REQUIRED_NOTICE, "error")
    else:
        two_step_service.turn_off_authenticator(me())
        flash("Your authenticator app is removed.", "success")
    return redirect_to(url_for("account.index") + SECURITY)


@bp.post("/passkeys/options")
@customer_required()
def passkey_options():
    """Options for adding a passkey to this login (read by static/passkeys.js)."""
    return passkeys.registration_options(me()), 200, {"Content-Type": "application/json"}


@bp.post("/passkeys")
@customer_required()
def add_passkey():
    """The browser's new passkey, verified and kept."""
    if not request.is_json:
        abort(400)
    body = passkeys.parse(request.get_data())
    try:
        passkeys.register(me(), body.get("credential") or {}, body.get("name", ""))
    except passkeys.PasskeyError as exc:
        return json_answer(error=str(exc), status=422)
    flash(_enabled_notice(me(), "Your passkey is added."), "success")
    return json_answer(url_for("account.index") + SECURITY)


@bp.post("/passkeys/remove")
@customer_required()
def remove_passkey():
    """Remove one of this login's passkeys (the password first)."""
    form = CurrentPasswordForm()
    if not _password_ok(form):
        return _page(status=422, security={"password_form": form})
    credential_id = request.form.get("passkey", "")
    if not any(p.credential_id == credential_id for p in passkeys.passkeys_of(me())):
        abort(404)
    if _would_leave_none(me(), removing_passkey=True):
        flash(REQUIRED_NOTICE, "error")
    else:
        removed = passkeys.remove(me(), credential_id)
        flash(f"The passkey “{removed.name}” is removed.", "success")
    return redirect_to(url_for("account.index") + SECURITY)


@bp.post("/two-step/codes")
@customer_required()
def recovery_codes():
    """New recovery codes (the old ones stop working), shown this once."""
    form = CurrentPasswordForm()
    if not _password_ok(form):
        return _page(status=422, security={"password_form": form})
    if not two_step_service.has_two_step(me()):
        abort(404)
    codes = two_step_service.new_recovery_codes(me())
    return render("account/two_step_codes.html", codes=codes)


@bp.post("/two-step/company")
@customer_required(role="company_admin")
def company_rule():
    """A company admin requires (or stops requiring) two-step sign-in of every login."""
    form = CompanyRuleForm()
    if not form.validate():
        abort(400)
    if two_step_service.set_company_rule(me(), bool(form.required.data)):
        flash(
            "Every login of your company now signs in with two steps; those without one set "
            "it up at their next sign-in."
            if form.required.data
            else "Two-step sign-in is now each login's own choice.",
            "success",
        )
    return redirect_to(url_for("account.index") + SECURITY)
