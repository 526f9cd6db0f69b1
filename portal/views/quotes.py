"""Quotes and requests for quote of the signed-in customer: list, ask, read, accept, decline."""

from flask import Blueprint, abort, flash, request, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..forms.quotes import AcceptForm, DeclineForm, RfqForm
from ..models import Product
from ..services import quotes
from ..services.audit import client_ip
from ..services.backoffice import paginate
from ..web import choice, page_number, redirect_to, render
from .orders import reorder_from

bp = Blueprint("quotes", __name__, url_prefix="/quotes")
quotes_required = customer_required("quotes", "quotes")
TABS = {"quotes": "Quotes", "requests": "Requests for quote"}
FILTERS = {
    "all": "All",
    "published": "Awaiting decision",
    "accepted": "Accepted",
    "declined": "Declined",
    "expired": "Expired",
}


def _quote_or_404(quote_id):
    quote = quotes.quote_for(current_user, quote_id)
    if quote is None:
        abort(404)
    return quote


@bp.get("/")
@quotes_required
def index():
    """Quotes published to the company, or the company's requests; htmx swaps the results."""
    tab = choice("tab", TABS, "quotes")
    status = choice("status", FILTERS, "all")
    if tab == "quotes":
        page = paginate(quotes.quotes_for(current_user, status), page_number())
    else:
        page = paginate(quotes.rfqs_for(current_user), page_number())
    return render(
        "quotes/index.html",
        block="results",
        page=page,
        tab=tab,
        tabs=TABS,
        current=status,
        filters=FILTERS,
        waiting=quotes.waiting_count(current_user),
        labels=quotes.QUOTE_LABELS,
        rfq_labels=quotes.RFQ_LABELS,
        status_of=quotes.status_of,
    )


def _rfq_form():
    return RfqForm(
        products=list(quotes.catalog()),
        sites=list(quotes.sites_for(current_user)),
        site_required=current_user.site_ids is not None,
    )


@bp.route("/requests/new", methods=["GET", "POST"])
@quotes_required
def new():
    """Ask for a quote: needed-by date, site, notes, a few item rows (blank rows skipped) and
    files (drawings, photos); a refused file is named next to the field, the rest kept."""
    form = _rfq_form()
    if request.method == "POST" and request.form.get("action") == "more":
        # Without JavaScript, "More rows" posts what was typed and gets the form back longer.
        form.add_rows()
        return render("quotes/new.html", block="form", form=form)
    if request.method == "POST" and form.validate():
        lines = []
        for product_id, description, milli in form.filled_lines():
            product = Product.get_or_none(Product.id == int(product_id)) if product_id else None
            lines.append(
                quotes.Line(product, description or (product.description if product else ""), milli)
            )
        try:
            rfq = quotes.create_rfq(
                current_user,
                lines,
                needed_by=form.needed_by.data,
                notes=form.notes.data,
                site_id=int(form.site_id.data) if form.site_id.data else None,
                files=form.files.prepared,
            )
        except quotes.QuoteError as exc:
            target = getattr(form, exc.field or "", None)
            if target is not None and hasattr(target, "errors") and exc.field != "lines":
                target.errors = [exc.message]
            else:
                form.lines_error = exc.message
        else:
            flash(
                f"Request {rfq.number} is sent. We will email you when the quote is ready.",
                "success",
            )
            return redirect_to(url_for("quotes.rfq", rfq_id=rfq.id))
    status = 422 if request.method == "POST" else 200
    return render("quotes/new.html", block="form", status=status, form=form)


@bp.get("/requests/<opaque('rfq'):rfq_id>")
@quotes_required
def rfq(rfq_id):
    """One request for quote: what was asked, and the quotes that answer it."""
    found = quotes.rfq_for(current_user, rfq_id)
    if found is None:
        abort(404)
    return render(
        "quotes/rfq.html",
        rfq=found,
        lines=quotes.rfq_lines(found),
        files=quotes.rfq_files(found),
        answers=quotes.visible_quotes_of(found),
        rfq_labels=quotes.RFQ_LABELS,
        labels=quotes.QUOTE_LABELS,
        status_of=quotes.status_of,
        action_form=ActionForm(),
    )


@bp.get("/<opaque('quote'):quote_id>")
@quotes_required
def show(quote_id):
    """One quote with its lines and total; accept or decline while it is open."""
    return _show(_quote_or_404(quote_id))


def _show(quote, decline_form=None, status=200, accept_form=None):
    lines = quotes.quote_lines(quote)
    accept_form = accept_form or AcceptForm(formdata=None)
    # The digest of the quote as this page shows it: accepted only if it still matches.
    accept_form.digest.data = quotes.digest(quote, lines)
    return render(
        "quotes/show.html",
        block="decide",
        status=status,
        quote=quote,
        state=quotes.status_of(quote),
        lines=lines,
        files=quotes.quote_files(quote),
        accept_form=accept_form,
        decline_form=decline_form or DeclineForm(formdata=None),
        labels=quotes.QUOTE_LABELS,
        signature=quotes.signature_of(quote),
        orders=quotes.orders_of(quote) if current_user.has_role("orders") else [],
        action_form=ActionForm(),
    )


@bp.post("/<opaque('quote'):quote_id>/accept")
@quotes_required
def accept(quote_id):
    """Accept the quote (once, while it is valid); the office is told by email."""
    quote = _quote_or_404(quote_id)
    form = AcceptForm()  # a missing or forged CSRF token was refused with 400 before this
    if not form.validate():
        return _show(quote, status=422, accept_form=form)
    signing = quotes.Signing(
        full_name=form.full_name.data,
        terms=form.terms.data,
        customer_po=form.customer_po.data,
        seen_digest=form.digest.data or "",
        ip=client_ip(),
        user_agent=request.headers.get("User-Agent", ""),
    )
    try:
        quotes.accept(quote, current_user, signing)
    except quotes.QuoteError as exc:
        field = getattr(form, exc.field or "", None)
        if field is not None:
            field.errors = [exc.message]
            return _show(quote, status=422, accept_form=form)
        flash(exc.message, "warning")
    else:
        flash(
            f"Thank you — you signed quote {quote.number} as {signing.full_name}. "
            "We will confirm the order.",
            "success",
        )
    return redirect_to(url_for("quotes.show", quote_id=quote.id))


@bp.post("/requests/<opaque('rfq'):rfq_id>/withdraw")
@quotes_required
def withdraw(rfq_id):
    """Take back a request for quote the office has not quoted yet."""
    found = quotes.rfq_for(current_user, rfq_id)
    if found is None:
        abort(404)
    if not ActionForm().validate():
        abort(400)
    try:
        quotes.withdraw_rfq(found, current_user)
    except quotes.QuoteError as exc:
        flash(exc.message, "warning")
    else:
        flash(f"Request {found.number} is withdrawn.", "success")
    return redirect_to(url_for("quotes.rfq", rfq_id=found.id))


@bp.post("/<opaque('quote'):quote_id>/reorder")
@quotes_required
def reorder(quote_id):
    """A cart with this quote's catalog lines at today's prices (needs the orders role)."""
    quote = _quote_or_404(quote_id)
    if not current_user.has_role("orders"):
        abort(404)
    if not ActionForm().validate():
        abort(400)
    return reorder_from(quotes.quote_lines(quote), f"quote {quote.number}")


@bp.post("/<opaque('quote'):quote_id>/decline")
@quotes_required
def decline(quote_id):
    """Decline the quote with a reason (once, while it is open)."""
    quote = _quote_or_404(quote_id)
    form = DeclineForm()
    if not form.validate():
        return _show(quote, form, 422)
    try:
        quotes.decline(quote, current_user, form.reason.data)
    except quotes.QuoteError as exc:
        flash(exc.message, "warning")
    else:
        flash(f"Quote {quote.number} is declined. Thank you for telling us why.", "success")
    return redirect_to(url_for("quotes.show", quote_id=quote.id))
