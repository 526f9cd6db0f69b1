"""Invoice-verified self-registration: prove you are a customer with an invoice and its code."""

from flask import Blueprint, abort, request, url_for

from ..forms.access import RegisterForm
from ..services import access, settings
from ..services.ratelimit import guest_limit
from ..web import redirect_to, render
from .password import land, set_password_view

bp = Blueprint("register", __name__, url_prefix="/register")


def _enabled():
    if not settings.get("self_registration"):
        abort(404)


def _form() -> RegisterForm:
    form = RegisterForm()
    if settings.get("quick_pay_account_number"):
        form.code.label.text = "Quick-pay code or account number"
    return form


@bp.route("/", methods=["GET", "POST"])
@guest_limit()
def new():
    """The registration form; every well-formed request gets the same answer (B1)."""
    _enabled()
    form = _form()
    if request.method == "POST" and form.validate():
        access.register(
            {
                "invoice_number": form.invoice_number.data,
                "code": form.code.data,
                "name": form.name.data,
                "email": form.email.data,
                "phone": form.phone.data,
            }
        )
        return redirect_to(url_for("register.sent"))
    form.code.data = ""  # never echo a code back
    status = 422 if request.method == "POST" else 200
    return render("register/new.html", block="form", status=status, form=form)


@bp.get("/sent")
def sent():
    """The one answer to a registration."""
    _enabled()
    return render("register/sent.html")


@bp.get("/confirm/<token>")
def confirm(token):
    """The link in the registration email."""
    return land("register", token)


@bp.route("/confirm", methods=["GET", "POST"])
@guest_limit()
def finish():
    """Finish a registration: choose a password and land signed in."""
    return set_password_view("register")
