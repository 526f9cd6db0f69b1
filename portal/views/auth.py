"""Customer sign-in and sign-out, with two-step sign-in (an authenticator app, passkeys,
recovery codes) and sign-in with a passkey alone."""

import time

from flask import Blueprint, abort, flash, jsonify, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..auth import mark_fresh, safe_next
from ..filters import datetimefmt
from ..forms import ActionForm
from ..forms.auth import CustomerSignInForm, TwoStepCodeForm
from ..forms.two_step import RecoveryCodeForm
from ..security import digest, seal, unseal
from ..services import access as access_service
from ..services import auth as auth_service
from ..services import passkeys
from ..services import two_step as two_step_service
from ..services.ratelimit import guest_limit
from ..web import header_url, hx_redirect, qr_svg, redirect_to, render

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "That email and password do not match an active login."
TERMS_NEEDED = "Tick the box to accept the terms of use before you sign in."


def sign_in(user, default: str):
    """Rotate the session, start a server-side session row and log the user in."""
    next_url = safe_next(request.args.get("next"), default)
    if current_user.is_authenticated:
        # Switching logins in one browser: the old session must not stay live server-side.
        auth_service.end_session(current_user.session_key)
    session.clear()  # a fresh session at sign-in: no fixation (checklist D3)
    auth_service.start_session(user)
    login_user(user)
    mark_fresh()
    # A targeted htmx post gets HX-Redirect: a whole page must not land inside the form.
    return redirect_to(next_url)


def sign_in_view(form, template: str, staff: bool, default: str, check=None, **context):
    """Shared GET/POST handling of the customer and staff sign-in pages.

    `check(user, form)` runs after the password matched and may answer instead of signing
    in (the customer terms box); `context` goes to the template.
    """
    if request.method == "POST" and form.validate():
        result = auth_service.authenticate(form.email.data, form.password.data, staff=staff)
        if result.user is not None:
            answer = check(result.user, form) if check else None
            if answer is not None:
                return answer
            return sign_in(result.user, default)
        if result.locked_until:
            form.form_errors.append(
                "Too many attempts. Try again after " + datetimefmt(result.locked_until) + "."
            )
            return render(template, block="form", status=429, form=form, **context)
        form.form_errors.append(GENERIC_FAILURE)
    status = 422 if request.method == "POST" else 200
    return render(template, block="form", status=status, form=form, **context)


@bp.route("/login", methods=["GET", "POST"])
@guest_limit()
def login():
    """The customer sign-in page."""
    # A POST still signs in: switching logins in one browser ends the first session.
    if request.method == "GET" and current_user.is_authenticated and not current_user.is_staff:
        return redirect(url_for("home.index"))
    reload = full_load()
    if reload:
        return reload
    terms = access_service.current_terms()

    def check_terms(user, form):
        # Only someone who knows the password gets this far, so asking reveals nothing.
        if access_service.needs_terms(user):
            if not form.accept_terms.data:
                form.accept_terms.errors.append(TERMS_NEEDED)
                return render("auth/login.html", block="form", status=422, form=form, terms=terms)
            access_service.accept_terms(user)
        return second_step(user, safe_next(request.args.get("next"), url_for("home.index")))

    return sign_in_view(
        CustomerSignInForm(),
        "auth/login.html",
        False,
        url_for("home.index"),
        check=check_terms,
        terms=terms,
    )


def sign_out(login_endpoint: str):
    """Revoke the server-side session (not just drop the cookie) and go to a sign-in page."""
    if ActionForm().validate_on_submit() and current_user.is_authenticated:
        auth_service.end_session(current_user.session_key)
        logout_user()
        session.clear()
        flash("You are signed out.", "success")
    return redirect_to(url_for(login_endpoint))


@bp.post("/logout")
def logout():
    """Customer sign-out."""
    return sign_out("auth.login")


# --- two-step sign-in ---------------------------------------------------------------------


def full_load():
    """A boosted GET of a page that uses static/js/passkeys.js answers with a full page load
    of itself: htmx's boosted swap does not run scripts from <head>."""
    if request.method == "GET" and request.headers.get("HX-Boosted") == "true":
        return hx_redirect(request.full_path.rstrip("?"))
    return None


# A customer login half-way through signing in: who, its auth stamp, since when, where to
# go next, and while setting up an authenticator app its sealed new secret.
PENDING = "_customer_two_step"
PENDING_SECONDS = 300


def hold_for_second_step(user, key: str, next_url: str, endpoints: tuple[str, str]):
    """After the right password, for customers and staff alike: when the login has a second
    step to take (or to set up), end any session, remember who is half-way (in the session
    under `key`: the login, a digest of its auth stamp, since when, where to go next) and
    send them to the code page or the set-up page (`endpoints`). None when nothing more is
    needed and the caller signs in itself."""
    step = two_step_service.next_step(user)
    if step is None:
        return None
    if current_user.is_authenticated:
        auth_service.end_session(current_user.session_key)
    session.clear()
    session[key] = {
        "uid": user.id,
        "stamp": digest(user.auth_stamp)[:16],  # the cookie is readable: never the stamp
        "at": int(time.time()),
        "next": next_url,
    }
    code_page, setup_page = endpoints
    return redirect_to(url_for(code_page if step == "code" else setup_page))


def held_data(key: str, seconds: int):
    """What `hold_for_second_step` remembered, while it is fresh; else None."""
    data = session.get(key)
    if not data or time.time() - data.get("at", 0) > seconds:
        return None
    return data


def second_step(user, next_url: str):
    """After a password (sign-in, invitation, registration): the second step when the login
    has one or its company requires one, else signed in. None when nothing more is needed
    and the caller signs in itself."""
    return hold_for_second_step(user, PENDING, next_url, ("auth.two_step", "auth.two_step_setup"))


def sign_in_or_second_step(user, next_url: str):
    """`sign_in`, unless the login still has its second step to take."""
    return second_step(user, next_url) or sign_in(user, next_url)


def _pending():
    """The customer login half-way through signing in, with its pending data; (None, None)
    when there is none, it took more than five minutes, or the login changed meanwhile."""
    data = held_data(PENDING, PENDING_SECONDS)
    if data is None:
        return None, None
    user = auth_service.find_portal_user_by_id(data["uid"])
    if (
        user is None
        or not user.is_active
        or not user.contact.customer.portal_enabled
        or digest(user.auth_stamp)[:16] != data["stamp"]
    ):
        return None, None
    return user, data


def _start_again():
    if session.pop(PENDING, None) is not None:
        flash("That sign-in took too long. Please sign in again.", "info")
    return redirect(url_for("auth.login"))


def _finish(user, data, enrolled: bool = False):
    """The second step passed: a fresh signed-in session; a new second step goes on to
    the recovery codes."""
    if enrolled:
        response = sign_in(user, url_for("account.index") + "#sign-in-security")
        flash(
            "Two-step sign-in is on. Create your recovery codes now, for the day your "
            "phone or passkey is not at hand.",
            "success",
        )
        return response
    return sign_in(user, data["next"])


def _locked_message(until) -> str:
    return f"Too many wrong codes. Try again after {datetimefmt(until)}."


def _code_page(user, code_form=None, recovery_form=None, status=200):
    return render(
        "auth/two_step.html",
        block="forms",
        status=status,
        user=user,
        code_form=code_form or TwoStepCodeForm(formdata=None),
        recovery_form=recovery_form or RecoveryCodeForm(formdata=None),
        has_app=two_step_service.has_authenticator(user),
        has_passkey=bool(passkeys.passkeys_of(user)),
    )


@bp.route("/login/two-step", methods=["GET", "POST"])
@guest_limit()
def two_step():
    """Second step of a customer sign-in: a passkey, the authenticator's code, or a
    recovery code."""
    user, data = _pending()
    if user is None:
        return _start_again()
    step = two_step_service.next_step(user)
    if step != "code":  # reset by staff meanwhile: nothing to prove, or set one up
        return redirect(url_for("auth.two_step_setup")) if step else _finish(user, data)
    if request.method == "GET":
        return full_load() or _code_page(user)
    if "recovery_code" in request.form:
        form = RecoveryCodeForm()
        if not form.validate():
            return _code_page(user, recovery_form=form, status=422)
        result = two_step_service.use_recovery_code(user, form.recovery_code.data)
        if result.ok:
            response = _finish(user, data)
            left = two_step_service.recovery_codes_left(user)
            flash(
                f"You signed in with a recovery code; {left} left. Each works once: create "
                "new ones in My account when they run low.",
                "info",
            )
            return response
        form.recovery_code.errors = [
            _locked_message(result.locked_until)
            if result.locked_until
            else "That is not one of your unused recovery codes."
        ]
        return _code_page(user, recovery_form=form, status=429 if result.locked_until else 422)
    form = TwoStepCodeForm()
    if not form.validate():
        return _code_page(user, code_form=form, status=422)
    result = two_step_service.check_code(user, form.code.data)
    if result.ok:
        return _finish(user, data)
    form.code.errors = [
        _locked_message(result.locked_until)
        if result.locked_until
        else "That code did not match. Type the code your app shows now (each code works once)."
    ]
    return _code_page(user, code_form=form, status=429 if result.locked_until else 422)


def _setup_secret(data) -> str:
    """The authenticator secret offered while setting up, kept sealed in the session."""
    secret = unseal(data.get("secret", ""))
    if not secret:
        secret = two_step_service.new_secret()
        session[PENDING] = {**data, "secret": seal(secret)}
    return secret


def authenticator_context(secret: str, email: str) -> dict:
    """The QR code and the grouped key of a new authenticator secret."""
    uri = two_step_service.provisioning_uri(secret, email)
    return {"qr": qr_svg(uri), "key": " ".join(secret[i : i + 4] for i in range(0, 32, 4))}


@bp.route("/login/two-step/setup", methods=["GET", "POST"])
@guest_limit()
def two_step_setup():
    """The company requires two-step sign-in and this login has none yet: add a passkey or
    an authenticator app, then the sign-in goes on."""
    user, data = _pending()
    if user is None:
        return _start_again()
    if two_step_service.has_two_step(user):
        return redirect(url_for("auth.two_step"))
    reload = full_load()
    if reload:
        return reload
    secret = _setup_secret(data)
    form, status = enroll_code(user, secret)
    if form is None:
        return _finish(user, data, enrolled=True)
    return render(
        "auth/two_step_setup.html",
        block="form",
        status=status,
        form=form,
        user=user,
        **authenticator_context(secret, user.email),
    )


def enroll_code(user, secret: str):
    """A GET or POST of the code that proves a new authenticator app: (None, 200) once it
    is set up, else the form (with the reason a posted code was refused) and the status."""
    form = TwoStepCodeForm()
    if request.method != "POST":
        return form, 200
    if not form.validate():
        return form, 422
    result = two_step_service.check_code(user, form.code.data, secret=secret)
    if result.ok:
        return None, 200
    if result.locked_until:
        form.code.errors = [_locked_message(result.locked_until)]
        return form, 429
    form.code.errors = ["That code did not match. Type the code your app shows now."]
    return form, 422


def json_answer(location: str | None = None, error: str = "", status: int = 200):
    """What the passkey script reads: where to go next, or what to tell the person."""
    body = {"location": header_url(location)} if location else {"error": error}
    response = jsonify(body)
    response.status_code = status
    return response


def _credential() -> dict:
    if not request.is_json:
        abort(400)
    return passkeys.parse(request.get_data())


@bp.post("/login/two-step/setup/passkey/options")
@guest_limit()
def setup_passkey_options():
    """Options for adding a passkey while the company's rule asks for a second step."""
    user, _ = _pending()
    if user is None or two_step_service.has_two_step(user):
        return json_answer(error="Please sign in again.", status=409)
    return passkeys.registration_options(user), 200, {"Content-Type": "application/json"}


@bp.post("/login/two-step/setup/passkey")
@guest_limit()
def setup_passkey():
    """The new passkey, then the sign-in goes on."""
    user, data = _pending()
    if user is None or two_step_service.has_two_step(user):
        return json_answer(error="Please sign in again.", status=409)
    credential = _credential()
    try:
        passkeys.register(user, credential.get("credential") or {}, credential.get("name", ""))
    except passkeys.PasskeyError as exc:
        return json_answer(error=str(exc), status=422)
    _finish(user, data, enrolled=True)
    return json_answer(url_for("account.index") + "#sign-in-security")


@bp.post("/login/two-step/passkey/options")
@guest_limit()
def two_step_passkey_options():
    """Options for proving the login's own passkey as the second step."""
    user, _ = _pending()
    if user is None:
        return json_answer(error="Please sign in again.", status=409)
    return passkeys.authentication_options(user), 200, {"Content-Type": "application/json"}


@bp.post("/login/two-step/passkey")
@guest_limit()
def two_step_passkey():
    """The login's passkey as the second step."""
    user, data = _pending()
    if user is None:
        return json_answer(error="Please sign in again.", status=409)
    try:
        passkeys.authenticate(_credential(), user=user)
    except passkeys.PasskeyError as exc:
        return json_answer(error=str(exc), status=422)
    next_url = data["next"]
    sign_in(user, next_url)
    return json_answer(next_url)


@bp.post("/login/passkey/options")
@guest_limit()
def passkey_options():
    """Options for a sign-in with a passkey alone (any passkey of this site)."""
    session.pop(PENDING, None)
    return passkeys.authentication_options(None), 200, {"Content-Type": "application/json"}


@bp.post("/login/passkey")
@guest_limit()
def passkey():
    """A sign-in with a passkey alone: the authenticator verified its user (a PIN or a
    fingerprint), which with the passkey itself makes two steps."""
    try:
        user = passkeys.authenticate(_credential())
    except passkeys.PasskeyError as exc:
        return json_answer(error=str(exc), status=422)
    if not user.is_active or not user.contact.customer.portal_enabled:
        return json_answer(error="That passkey did not sign you in.", status=422)
    if access_service.needs_terms(user):
        return json_answer(
            error="Please sign in with your password once to accept the new terms of use.",
            status=422,
        )
    next_url = safe_next(request.args.get("next"), url_for("home.index"))
    sign_in(user, next_url)
    return json_answer(next_url)
