"""Quick pay: a guest finds an invoice by number and quick-pay code, and pays it."""

from flask import Blueprint, abort, flash, redirect, request, url_for
from wtforms.fields.choices import SelectChoice

from .. import money
from ..filters import datetimefmt
from ..forms.billing import fill_payer
from ..forms.quickpay import LookupForm, PayForm, PayLinkForm
from ..services import figures, payments, providers, quickpay, settings
from ..services.ratelimit import guest_limit
from ..web import redirect_away, redirect_to, render

bp = Blueprint("quickpay", __name__, url_prefix="/pay")

GENERIC_FAILURE = (
    "We could not find an open invoice with that number and code. "
    "Check both against your invoice and try again."
)


@bp.before_request
def _enabled():
    if not settings.get("quick_pay_enabled"):
        abort(404)


def _lookup_form() -> LookupForm:
    form = LookupForm()
    if settings.get("quick_pay_account_number"):
        form.secret.label.text = "Quick-pay code or account number"
    return form


@bp.get("/")
def new():
    """The lookup form: invoice number and quick-pay code."""
    return render("quickpay/new.html", form=_lookup_form())


@bp.post("/")
@guest_limit()
def lookup():
    """Check the invoice number and code; one generic answer for every failure (A1)."""
    form = _lookup_form()
    if not form.validate():
        return render("quickpay/new.html", block="form", status=422, form=form)
    result = quickpay.lookup(
        form.number.data, form.secret.data, settings.get("quick_pay_account_number")
    )
    if result.invoice is not None:
        quickpay.grant(result.invoice)
        return redirect_to(url_for("quickpay.show"))
    form.secret.data = ""  # never echo a code back
    if result.locked_until:
        form.form_errors.append(
            # The same words for a locked invoice number and a locked address (A1, A5).
            "Too many attempts. For your security, try again after "
            f"{datetimefmt(result.locked_until)}, or ask for a pay link by email."
        )
        return render("quickpay/new.html", block="form", status=429, form=form)
    form.form_errors.append(GENERIC_FAILURE)
    return render("quickpay/new.html", block="form", status=422, form=form)


def _due(invoice) -> dict:
    """Today's figures: the discount still open and the amount that clears the invoice
    (besides payments already on their way), the same ones the payments core checks."""
    today = payments.today()
    payable = figures.payable_view(invoice)
    discount = money.discount_available(payable, today)
    covered = payable.pending and payable.balance_cents <= 0
    return {
        "state": invoice.state(today),
        "discount": discount,
        "clears": payable.balance_cents - discount,
        "pending": payable.pending,
        "covered": payments.covered_message(payable) if covered else None,
    }


def _pay_context(invoice, form, due):
    return {
        **due,
        "invoice": invoice,
        "form": form,
        "discounted_due": due["clears"],
        "deadline": money.discount_deadline(invoice),
        "partial": settings.get("partial_payments"),
    }


def _pay_form(invoice, due) -> PayForm:
    form = PayForm()
    choices = [SelectChoice(p.name, p.label) for p in providers.enabled()]
    form.provider.choices = choices
    form.amount.currency = invoice.currency
    if not payments.use_page_key(form.page_key.data):
        form.page_key.data = payments.page_key()
    if not settings.get("partial_payments"):
        # Not the payer's to choose: whatever was posted, the payment clears the invoice.
        form.amount.data = str(money.to_decimal(due["clears"]))
    elif request.method == "GET":
        form.amount.data = str(money.to_decimal(due["clears"]))
    if request.method == "GET" and len(choices) == 1:
        form.provider.data = choices[0].value
    return form


def _granted_or_restart():
    invoice = quickpay.granted_invoice()
    if invoice is None:
        flash("For your security, enter the invoice number and code again.", "info")
    return invoice


@bp.get("/invoice")
def show():
    """What is due on the invoice this browser may pay, with the pay form (A9: the minimum)."""
    invoice = _granted_or_restart()
    if invoice is None:
        return redirect(url_for("quickpay.new"))
    due = _due(invoice)
    form = _pay_form(invoice, due)
    _fill_from_attempt(form, invoice, request.args.get("attempt", ""))
    return render("quickpay/show.html", **_pay_context(invoice, form, due))


def _fill_from_attempt(form, invoice, key: str) -> None:
    """ "Try again" after a declined card: what the payer typed last time, read from the
    attempt this browser started for this invoice (never from the URL's own values)."""
    attempt = payments.retry_of(key, guest=True)
    if attempt is None:
        return
    lines = dict(payments.retry_lines(attempt))
    if invoice.id not in lines:
        return
    fill_payer(form, attempt)
    if settings.get("partial_payments"):
        form.amount.data = str(money.to_decimal(lines[invoice.id]))


@bp.post("/invoice")
@guest_limit()
def pay():
    """Start the payment: the amount is checked on the server (A10) and bound to the attempt."""
    invoice = _granted_or_restart()
    if invoice is None:
        return redirect_to(url_for("quickpay.new"))
    due = _due(invoice)
    form = _pay_form(invoice, due)
    if form.validate():
        try:
            checkout = payments.checkout(
                invoice.customer,
                [(invoice, form.amount.cents)],
                form.provider.data,
                form.payer_name.data.strip(),
                form.payer_email.data.strip().lower(),
                guest=True,
            )
        except payments.PaymentError as exc:
            getattr(form, exc.field, form.amount).errors.append(exc.message)
        else:
            return redirect_away(checkout.redirect_url)
    context = _pay_context(invoice, form, due)
    return render("quickpay/show.html", block="pay_form", status=422, **context)


@bp.route("/link", methods=["GET", "POST"])
@guest_limit()
def link_request():
    """ "Email me a pay link": sent only to the billing address on file, one answer for all."""
    form = PayLinkForm()
    if request.method == "POST":
        if form.validate():
            quickpay.send_pay_link(form.number.data)
            return render("quickpay/link_sent.html")
        return render("quickpay/link_request.html", status=422, form=form)
    return render("quickpay/link_request.html", form=form)


@bp.get("/link/<token>")
def link(token):
    """A signed pay link from an email or a printed invoice's QR code."""
    invoice = quickpay.open_link(token)
    if invoice is None:
        return render("quickpay/link_invalid.html", status=404)
    quickpay.grant(invoice)
    return redirect(url_for("quickpay.show"))


@bp.post("/done")
def done():
    """Forget the invoice in this browser (a shared computer)."""
    quickpay.forget()
    flash("Done. The invoice is no longer open in this browser.", "success")
    return redirect_to(url_for("home.index"))
