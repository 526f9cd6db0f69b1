"""Quotes in the back office: the RFQ queue, pricing a quote from an RFQ, drafts, publishing."""

from datetime import timedelta

from flask import Blueprint, abort, flash, request, url_for

from ...filters import quantity
from ...forms import ActionForm
from ...forms.quotes import DirectQuoteForm, QuoteForm
from ...models import Quote, Rfq, SalesOrder
from ...money import to_decimal
from ...services import backoffice, quotes
from ...web import choice, page_number, redirect_to, render, search_text
from ._common import attach, chosen_customer, get_or_404, guard, me, site_choices

bp = Blueprint("staff_quotes", __name__, url_prefix="/staff/quotes")
guard(bp)
RFQ_FILTERS = {"submitted": "To quote", "quoted": "Quoted", "closed": "Closed", "all": "All"}
QUOTE_FILTERS = {
    "all": "All",
    "draft": "Drafts",
    "published": "Published",
    "accepted": "Accepted",
    "declined": "Declined",
    "expired": "Expired",
}
VALID_DAYS = 30
QUOTE_FIRST_ROWS = 3  # blank rows a quote started from nothing opens with


@bp.get("/")
def index():
    """Requests for quote, the ones waiting for a quote first; search by number or customer."""
    q = search_text()
    status = choice("status", RFQ_FILTERS, "submitted")
    page = backoffice.paginate(quotes.staff_rfqs(status, q), page_number())
    return render(
        "staff/quotes/index.html",
        block="results",
        q=q,
        current=status,
        filters=RFQ_FILTERS,
        page=page,
        rfq_labels=quotes.RFQ_LABELS,
    )


@bp.get("/list")
def quotes_list():
    """Every quote, newest first, by status; search by number or customer."""
    q = search_text()
    status = choice("status", QUOTE_FILTERS, "all")
    page = backoffice.paginate(quotes.staff_quotes(status, q), page_number())
    return render(
        "staff/quotes/list.html",
        block="results",
        q=q,
        current=status,
        filters=QUOTE_FILTERS,
        page=page,
        labels=quotes.STAFF_QUOTE_LABELS,
        status_of=quotes.status_of,
    )


@bp.get("/rfqs/<int:rfq_id>")
def rfq(rfq_id):
    """One RFQ: the customer's lines and notes, its quotes, and what to do next."""
    found = get_or_404(Rfq, rfq_id)
    return render(
        "staff/quotes/rfq.html",
        rfq=found,
        lines=quotes.rfq_lines(found),
        files=quotes.rfq_files(found),
        answers=list(found.quotes.order_by(Quote.id.desc())),
        rfq_labels=quotes.RFQ_LABELS,
        labels=quotes.STAFF_QUOTE_LABELS,
        status_of=quotes.status_of,
        action_form=ActionForm(),
    )


@bp.post("/rfqs/<int:rfq_id>/close")
def close(rfq_id):
    """Close an RFQ the office will not quote."""
    found = get_or_404(Rfq, rfq_id)
    if ActionForm().validate_on_submit() and found.status == "submitted":
        quotes.close_rfq(found, me())
        flash(f"Request {found.number} is closed.", "success")
    return redirect_to(url_for("staff_quotes.rfq", rfq_id=found.id))


def _prefill(form, lines, price_free_text: bool = True) -> None:
    """Rows from lines; a free-text RFQ line has no price yet, so its price starts empty
    (staff must type one) instead of a $0.00 that could be published by mistake."""
    for line in lines:
        entry = form.lines.append_entry()
        entry.form.item_code.data = line.product.item_code if line.product else ""
        entry.form.description.data = line.description
        entry.form.quantity.data = quantity(line.quantity_milli)
        if line.product is not None or price_free_text:
            entry.form.unit_price.data = str(to_decimal(line.unit_price_cents))


def _lines(form, customer_id: int):
    """The typed lines as service Lines; None (errors attached) when an item code is unknown.
    A catalog line typed without a price gets the customer's price for it."""
    result, ok = [], True
    filled = [entry for entry in form.lines if not entry.form.is_blank]
    for entry, (code, description, milli, cents) in zip(filled, form.filled_lines(), strict=True):
        product = quotes.product_by_code(code) if code else None
        if code and product is None:
            entry.form.item_code.errors = ["No product has this item code."]
            ok = False
            continue
        if cents is None:
            cents = quotes.price_for(customer_id, product)
        result.append(
            quotes.Line(
                product, description or (product.description if product else ""), milli, cents
            )
        )
    return result if ok else None


def _submitted(form) -> bool:
    """A save that validates (the no-JavaScript "More lines" button only adds rows)."""
    if request.form.get("action") == "more":
        blank = sum(1 for entry in form.lines if entry.form.is_blank)
        form.pad(blank + 3)
        return False
    return form.validate()


def _form_page(form, rfq=None, quote=None, status=200):
    if quote is not None:
        back = url_for("staff_quotes.show", quote_id=quote.id)
    elif rfq is not None:
        back = url_for("staff_quotes.rfq", rfq_id=rfq.id)
    else:
        back = url_for("staff_quotes.quotes_list")
    source = rfq or (quote.rfq if quote is not None and quote.rfq_id else None)
    return render(
        "staff/quotes/form.html",
        block="form",
        status=status,
        form=form,
        rfq=rfq,
        quote=quote,
        back=back,
        source_files=quotes.rfq_files(source) if source is not None else [],
        files=quotes.quote_files(quote) if quote is not None else [],
    )


@bp.route("/rfqs/<int:rfq_id>/quote", methods=["GET", "POST"])
def new(rfq_id):
    """A draft quote for an RFQ, its lines prefilled with the customer's prices."""
    found = get_or_404(Rfq, rfq_id)
    form = QuoteForm()
    if request.method == "GET":
        form.valid_until.data = quotes.today() + timedelta(days=VALID_DAYS)
        _prefill(form, quotes.proposed_lines(found), price_free_text=False)
        form.pad()
        return _form_page(form, rfq=found)
    return _create(form, rfq=found)


@bp.route("/new", methods=["GET", "POST"])
def new_direct():
    """A draft quote the office starts itself, for any customer, with no request behind it."""
    form = DirectQuoteForm()
    if request.method == "GET":
        chosen = chosen_customer()
        form.customer.data = backoffice.customer_label(chosen) if chosen else ""
        form.valid_until.data = quotes.today() + timedelta(days=VALID_DAYS)
        form.pad(QUOTE_FIRST_ROWS)
        site_choices(form, chosen)
        return _form_page(form)
    site_choices(form)
    return _create(form)


def _create(form, rfq=None):
    """A posted new quote (for the RFQ's customer, else the one the form names): saved as a
    draft and shown, or the form again with its errors (or more rows, without JavaScript)."""
    if _submitted(form):
        customer = rfq.customer if rfq is not None else form.customer.customer
        lines = _lines(form, customer.id)
        if lines is not None:
            try:
                quote = quotes.create_quote(
                    rfq,
                    me(),
                    lines,
                    form.valid_until.data,
                    form.notes.data,
                    customer=customer,
                    site_id=None if rfq is not None else form.site_id.data or None,
                    files=form.files.prepared,
                )
            except quotes.QuoteError as exc:
                attach(form, exc)
            else:
                flash(f"Draft {quote.number} is saved. Check it, then publish it.", "success")
                return redirect_to(url_for("staff_quotes.show", quote_id=quote.id))
    form.pad()
    status = 200 if request.form.get("action") == "more" else 422
    return _form_page(form, rfq=rfq, status=status)


@bp.get("/<int:quote_id>")
def show(quote_id):
    """One quote as the customer will see it, with edit and publish for a draft."""
    quote = get_or_404(Quote, quote_id)
    lines = quotes.quote_lines(quote)
    return render(
        "staff/quotes/show.html",
        quote=quote,
        state=quotes.status_of(quote),
        lines=lines,
        files=quotes.quote_files(quote),
        signature=quotes.signature_of(quote),
        current_digest=quotes.digest(quote, lines),
        labels=quotes.STAFF_QUOTE_LABELS,
        action_form=ActionForm(),
        orders=list(quote.orders.order_by(SalesOrder.id)),
    )


@bp.route("/<int:quote_id>/edit", methods=["GET", "POST"])
def edit(quote_id):
    """Change a draft's lines, prices, validity and notes."""
    quote = get_or_404(Quote, quote_id)
    if quote.status != "draft":
        flash("Only a draft can be changed; this quote was already published.", "warning")
        return redirect_to(url_for("staff_quotes.show", quote_id=quote.id))
    form = QuoteForm()
    if request.method == "GET":
        form.valid_until.data = quote.valid_until
        form.notes.data = quote.notes
        _prefill(form, quotes.quote_lines(quote))
        form.pad()
        return _form_page(form, quote=quote)
    if _submitted(form):
        lines = _lines(form, quote.customer_id)
        if lines is not None:
            try:
                quotes.update_draft(
                    quote,
                    me(),
                    lines,
                    form.valid_until.data,
                    form.notes.data,
                    files=form.files.prepared,
                )
            except quotes.QuoteError as exc:
                form.form_errors.append(exc.message)
            else:
                flash(f"Draft {quote.number} is saved.", "success")
                return redirect_to(url_for("staff_quotes.show", quote_id=quote.id))
    form.pad()
    status = 200 if request.form.get("action") == "more" else 422
    return _form_page(form, quote=quote, status=status)


@bp.post("/<int:quote_id>/publish")
def publish(quote_id):
    """Publish a draft: the customer can now accept it and is emailed."""
    quote = get_or_404(Quote, quote_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        quotes.publish(quote, me())
    except quotes.QuoteError as exc:
        flash(exc.message, "warning")
    else:
        flash(f"Quote {quote.number} is published; the customer was emailed.", "success")
    return redirect_to(url_for("staff_quotes.show", quote_id=quote.id))
