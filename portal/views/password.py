"""Passwords through emailed links: invitations, forgotten passwords and their resets.

A link's token moves from the URL into the session at once (B7), so it never sits in the
address bar, the history or a Referer; the clean page then asks for the new password.
"""

from flask import Blueprint, flash, redirect, request, session, url_for

from ..forms.access import ForgotPasswordForm, SetPasswordForm
from ..services import access
from ..services import auth as auth_service
from ..services.ratelimit import guest_limit
from ..web import redirect_to, render
from .auth import TERMS_NEEDED, sign_in_or_second_step

bp = Blueprint("password", __name__)

PAGES = {
    "invite": {
        "title": "Set up your login",
        "intro": "Choose a password for your new login.",
        "button": "Set password and sign in",
        "endpoint": "password.welcome",
    },
    "register": {
        "title": "Finish your registration",
        "intro": "Choose a password to finish setting up your login.",
        "button": "Set password and sign in",
        "endpoint": "register.finish",
    },
    "reset": {
        "title": "Choose a new password",
        "intro": "Your new password replaces the old one, and every browser signed in "
        "with the old one is signed out.",
        "button": "Change password",
        "endpoint": "password.choose",
    },
}


def land(purpose: str, token: str):
    """Keep the link's token in the session and go to the page without it in the URL (B7)."""
    session[f"link_{purpose}"] = token
    return redirect(url_for(PAGES[purpose]["endpoint"]), code=303)


def set_password_view(purpose: str):
    """The 'choose a password' page behind a link: invalid links get one generic page."""
    token = session.get(f"link_{purpose}")
    user = access.read_link(purpose, token)
    if user is None:
        return render("password/link_invalid.html", status=400, purpose=purpose)
    form = SetPasswordForm()
    terms = access.current_terms()
    ask_terms = purpose != "reset" and access.needs_terms(user)
    context = {"form": form, "user": user, "page": PAGES[purpose], "terms": terms}
    if request.method == "POST" and form.validate():
        if ask_terms and not form.accept_terms.data:
            form.accept_terms.errors.append(TERMS_NEEDED)
        else:
            done = access.complete_link(purpose, token, form.password.data, accept_terms=ask_terms)
            session.pop(f"link_{purpose}", None)
            if done is None:
                return render("password/link_invalid.html", status=400, purpose=purpose)
            # The emailed link proved the mailbox: guessing pauses no longer hold it (C2).
            auth_service.lift_pauses(done)
            if purpose == "reset":
                # Not signed in after a reset (B8): the new password is used once, right away.
                flash(
                    "Your password is changed and every browser that was signed in is signed "
                    "out. Sign in with your new password.",
                    "success",
                )
                return redirect_to(url_for("auth.login"))
            # A second step the login has, or its company requires, comes first.
            response = sign_in_or_second_step(done, url_for("home.index"))
            flash(
                f"Welcome, {done.contact.first_name or done.display_name}! Your login is ready.",
                "success",
            )
            return response
    status = 422 if request.method == "POST" else 200
    return render("password/set.html", block="form", status=status, ask_terms=ask_terms, **context)


@bp.get("/invitation/<token>")
def invitation(token):
    """The link in an invitation email."""
    return land("invite", token)


@bp.route("/invitation", methods=["GET", "POST"])
@guest_limit()
def welcome():
    """Accept an invitation: choose a password and land signed in."""
    return set_password_view("invite")


@bp.route("/password/forgot", methods=["GET", "POST"])
@guest_limit()
def forgot():
    """Ask for a reset link; the answer is the same whether or not the email has a login."""
    form = ForgotPasswordForm()
    if request.method == "POST" and form.validate():
        access.request_reset(form.email.data)
        return redirect_to(url_for("password.sent"))
    status = 422 if request.method == "POST" else 200
    return render("password/forgot.html", block="form", status=status, form=form)


@bp.get("/password/sent")
def sent():
    """The one answer to a reset request."""
    return render("password/sent.html")


@bp.get("/reset/<token>")
def reset(token):
    """The link in a reset email."""
    return land("reset", token)


@bp.route("/reset", methods=["GET", "POST"])
@guest_limit()
def choose():
    """Choose a new password through a reset link; other sessions end."""
    return set_password_view("reset")
