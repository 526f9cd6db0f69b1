"""Invoices of the signed-in customer: list, CSV, detail, print, pay from the list, question."""

from flask import Blueprint, Response, abort, flash, request, url_for
from flask_login import current_user
from werkzeug.routing import BuildError
from wtforms.fields.choices import SelectChoice

from .. import money
from ..auth import customer_required
from ..forms import ActionForm
from ..forms.billing import CheckoutForm, QuestionForm, SelectionForm, fill_payer
from ..ids import from_public_id, public_id
from ..security import unseal
from ..services import (
    billing,
    cases,
    figures,
    payments,
    providers,
    quickpay,
    saved_methods,
    settings,
)
from ..web import absolute_url, qr_svg, redirect_away, redirect_to, render, wants_fragment

bp = Blueprint("billing", __name__, url_prefix="/invoices")
invoices_required = customer_required("invoices", "invoices")


@bp.context_processor
def _print_url():
    """The page's own URL with ?print=1: a "Print" link that works after a boosted visit;
    and `invoice_ref(id)`, the public id a form names an invoice by (E3)."""
    if request.endpoint is None:
        return {"invoice_ref": _invoice_ref}
    args = {**(request.view_args or {}), **request.args.to_dict(), "print": "1"}
    return {"print_url": url_for(request.endpoint, **args), "invoice_ref": _invoice_ref}


def _invoice_ref(invoice_id: int) -> str:
    return public_id("invoice", invoice_id)


def _invoice_id(value) -> int | None:
    """An invoice id from a form value: the public id the forms carry (E3), or a plain
    number from a page rendered before they did; the services scope it either way (E2)."""
    found = from_public_id("invoice", value)
    if found is None and isinstance(value, str) and value.isdigit() and len(value) < 19:
        found = int(value)
    return found


def _ticked() -> list[int]:
    values = request.form.getlist("invoice")[: billing.MAX_SELECTED]
    return [i for i in (_invoice_id(v) for v in values) if i is not None]


def _typed_amounts(ids) -> dict:
    """Invoice id -> the amount typed for it (`amount-<public id>`)."""
    typed = {}
    for key, value in request.form.items():
        if key.startswith("amount-"):
            invoice_id = _invoice_id(key.removeprefix("amount-"))
            if invoice_id is not None:
                typed[invoice_id] = value
    return {i: typed.get(i) for i in ids}


def _list_context(params, form=None, preview=None):
    counts = billing.status_counts(current_user)
    page = billing.invoice_page(current_user, params, counts=counts)
    ticked = _ticked() if request.method == "POST" else []
    on = billing.today()
    suggested = {i.id: billing.suggested(i, on) for i in page.items}
    return {
        "counts": counts,
        "summary_balance": counts["open_balance"],
        "ticked": set(ticked),
        "typed": {i: v for i, v in _typed_amounts(ticked).items() if v},
        "params": params,
        "page": page,
        "today": on,
        # A GET needs no form object (only a POST that failed review has values to show):
        # building a FlaskForm costs as much as rendering ten table rows.
        "form": form,
        "preview": preview,
        "partial": settings.get("partial_payments"),
        "suggested": suggested,
        "discounts": {i.id: i.balance_cents - suggested[i.id] for i in page.items},
    }


@bp.get("/")
@invoices_required
def index():
    """The filtered, sorted, paged invoice list; htmx swaps only the results (same URL)."""
    params = billing.ListParams.from_args(request.args)
    response = render("billing/index.html", block="results", **_list_context(params))
    if wants_fragment():
        # The address bar gets the canonical URL (defaults left out), not the raw form values.
        response.headers["HX-Push-Url"] = url_for("billing.index", **params.args())
    return response


@bp.get("/export.csv")
@invoices_required
def export():
    """The filtered list (every page) as CSV."""
    params = billing.ListParams.from_args(request.args)
    name = f"invoices-{params.status}-{billing.today().isoformat()}.csv"
    return Response(
        "".join(billing.csv_rows(current_user, params)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _preview(form, default="selected"):
    """Recompute the selection (or the one amount) from the submitted pay form."""
    values = settings.load()
    ids = _ticked()
    action = request.form.get("action", default)
    if action == "all":
        return billing.preview_all(current_user)
    if action == "amount" or (action == "total" and (form.pay_amount.data or "").strip()):
        text = form.pay_amount.data or ""
        preview = billing.preview_amount(current_user, text, ids, values)
        if preview.rows:
            _refuse_other_currency(text, preview.currency, preview.errors)
        return preview
    typed = _typed_amounts(ids)
    preview = billing.preview_selected(current_user, ids, typed, values)
    for row in preview.rows:
        errors = []
        _refuse_other_currency(typed.get(row.invoice.id), row.invoice.currency, errors)
        row.error = errors[0] if errors else row.error
    return preview


def _refuse_other_currency(text, currency: str, errors: list) -> None:
    """A symbol of another currency typed into an amount is refused next to it, never
    ignored (`€10` on a USD invoice, checklist A10)."""
    try:
        money.parse_amount(text or "0", currency)
    except money.AmountError as exc:
        if currency in str(exc):
            errors.append(str(exc))


@bp.post("/total")
@invoices_required
def total():
    """The running total as invoices are ticked and amounts typed (recomputed on the server)."""
    form = SelectionForm()
    form.validate()
    preview = _preview(form, default="total")
    return render("billing/_total.html", preview=preview, quiet=not request.form.get("invoice"))


def _checkout_form(preview=None):
    form = CheckoutForm()
    choices = [SelectChoice(p.name, p.label) for p in providers.enabled()]
    if saved_methods.enabled():
        choices += [
            SelectChoice(f"saved-{m.id}", f"{m.label} (saved card)")
            for m in saved_methods.methods_for(current_user.contact.customer_id)
        ]
    form.provider.choices = choices
    if request.method == "POST" and "payer_email" not in request.form:
        form.payer_name.data = current_user.display_name
        form.payer_email.data = current_user.email
        if len(choices) == 1:
            form.provider.data = choices[0].value
    if not payments.use_page_key(form.page_key.data):
        form.page_key.data = payments.page_key()
    return form


@bp.post("/review")
@invoices_required
def review():
    """Before paying: each invoice, the amount, discounts earned and the balance left."""
    form = SelectionForm()
    form.validate()
    preview = _preview(form)
    if not preview.ok:
        params = billing.ListParams.from_args(request.args)
        return render(
            "billing/index.html",
            block="results",
            status=422,
            **_list_context(params, form=form, preview=preview),
        )
    return render("billing/review.html", preview=preview, form=_checkout_form())


@bp.get("/retry")
@invoices_required
def retry():
    """Try again after a declined (or cancelled, expired) payment: the review once more with
    its invoices, amounts, payer name, email and method, read from the attempt record."""
    attempt = payments.retry_of(request.args.get("attempt", ""), current_user)
    if attempt is None:
        abort(404)
    preview = _rebuild(billing.lines_for(current_user, payments.retry_lines(attempt)))
    form = _checkout_form()
    fill_payer(form, attempt)
    return render("billing/review.html", preview=preview, form=form, retried=attempt)


def _confirmed_pairs():
    pairs = []
    for raw in request.form.getlist("line")[: billing.MAX_SELECTED]:
        public, _, cents = raw.partition(":")
        invoice_id = _invoice_id(public)
        try:
            pairs.append((invoice_id, int(cents)))
        except ValueError:
            abort(400)
        if invoice_id is None:
            abort(400)
    return pairs


@bp.post("/pay")
@invoices_required
def pay():
    """Start one payment for the reviewed invoices; the payments core checks every amount."""
    form = _checkout_form()
    lines = billing.lines_for(current_user, _confirmed_pairs())
    preview = _rebuild(lines)
    if form.validate() and preview.ok:
        provider, start = form.provider.data, None
        if provider.startswith("saved-"):  # a saved card: charged now, no provider page
            method = saved_methods.method_for(
                current_user.contact.customer_id, provider.removeprefix("saved-")
            )
            if method is None:
                abort(400)
            provider, start = "stripe", saved_methods.SavedStart(method)
        try:
            checkout = billing.pay(
                current_user,
                lines,
                provider,
                form.payer_name.data.strip(),
                form.payer_email.data.strip().lower(),
                start=start,
            )
        except payments.PaymentError as exc:
            field = getattr(form, exc.field, None)
            if field is not None and exc.field == "provider":
                field.errors.append(exc.message)
            else:
                preview.errors.append(exc.message)
        else:
            return redirect_away(checkout.redirect_url)
    return render("billing/review.html", block="checkout", status=422, preview=preview, form=form)


def _rebuild(lines):
    """The review's preview again from the confirmed lines (amounts re-validated)."""
    values = settings.load()
    preview = billing.Preview(mode="confirm")
    for invoice, cents in lines:
        row = billing.Row(invoice, cents)
        try:
            allocation = payments.plan([(invoice, cents)], values).allocations[0]
        except payments.PaymentError as exc:
            row.error = exc.message
        else:
            row.amount, row.discount = allocation.amount_cents, allocation.discount_cents
        preview.rows.append(row)
    if not preview.rows:
        preview.errors.append("These invoices have been paid in the meantime. Nothing is due.")
    return preview


def _case_url(case) -> str | None:
    """The case's page in the support area, when that area is installed."""
    for values in ({"case_id": case.id}, {"number": case.number}, {"id": case.id}):
        try:
            return url_for("cases.show", **values)
        except BuildError:
            continue
    return None


def _invoice_or_404(invoice_id):
    invoice = billing.invoice_for(current_user, invoice_id)
    if invoice is None:
        abort(404)
    return invoice


def _show_context(invoice, question_form=None):
    today = billing.today()
    payable = figures.payable_view(invoice)
    can_question = current_user.has_role("cases") and settings.get("module_cases")
    found = billing.cases_of(current_user, invoice) if can_question else []
    return {
        "invoice": invoice,
        "deadline": money.discount_deadline(invoice),
        "case_links": {case.id: _case_url(case) for case in found},
        "state": invoice.state(today),
        "today": today,
        "lines": billing.lines_of(invoice),
        "applications": billing.applications_of(invoice),
        "cases": found,
        "can_question": can_question,
        "question_form": question_form or QuestionForm(formdata=None),
        "suggested": billing.suggested(payable, today),
        "payable": payable,
        "cancellable": {
            p.payment_id for p in payable.pending if p.portal_user_id == current_user.id
        },
        "action_form": ActionForm(),
    }


@bp.get("/<opaque('invoice'):invoice_id>")
@invoices_required
def show(invoice_id):
    """One invoice: lines, payments applied, remaining balance, pay and question actions."""
    invoice = _invoice_or_404(invoice_id)
    return render("billing/show.html", **_show_context(invoice))


@bp.get("/<opaque('invoice'):invoice_id>/print")
@invoices_required
def printable(invoice_id):
    """The invoice as a document to print, with its quick-pay code and a QR pay link."""
    invoice = _invoice_or_404(invoice_id)
    context = _show_context(invoice)
    code = unseal(invoice.quick_pay_sealed) if invoice.quick_pay_sealed else None
    link = quickpay.pay_link(invoice) if settings.get("quick_pay_enabled") else None
    context.update(
        code=code,
        pay_link=link,
        qr=qr_svg(link) if link and context["state"] not in ("paid", "void") else None,
        customer=current_user.customer,
        quickpay_url=absolute_url("quickpay.new"),
    )
    return render("billing/print.html", **context)


@bp.post("/<opaque('invoice'):invoice_id>/question")
@customer_required("cases", "cases")
def question(invoice_id):
    """Open a support case about this invoice; it shows on the invoice and on the case."""
    if not current_user.has_role("invoices") or not settings.get("module_invoices"):
        abort(404)
    invoice = _invoice_or_404(invoice_id)
    form = QuestionForm()
    if not form.validate():
        context = _show_context(invoice, question_form=form)
        return render("billing/show.html", block="question", status=422, **context)
    case = cases.create_case(current_user, form.subject.data, form.message.data, invoice=invoice)
    # The payer ends on the new case (the same one on a double click: cases.create_case).
    flash(f"Thank you. Your question is case {case.number}; we will answer by email.", "success")
    return redirect_to(url_for("cases.show", case_id=case.id))


@bp.route("/credit", methods=["GET", "POST"])
@invoices_required
def credit():
    """Use the company's credit (overpayments, unapplied money) to pay open invoices."""
    if current_user.site_ids is not None:
        abort(404)  # credit is the company's; a site-limited login does not see it
    typed = None
    if request.method == "POST":
        typed = {
            invoice_id: value
            for key, value in request.form.items()
            if key.startswith("amount-")
            and (invoice_id := _invoice_id(key.removeprefix("amount-"))) is not None
        }
    plan = billing.credit_plan(current_user, typed)
    form = ActionForm()
    if request.method == "POST" and form.validate():
        if not plan.errors and not any(r.error for r in plan.rows) and plan.lines():
            try:
                payments.apply_credit(current_user.customer, plan.lines(), current_user)
            except payments.PaymentError as exc:
                plan.errors.append(exc.message)
            else:
                flash(
                    f"{money.format_cents(plan.total, plan.currency)} of credit applied.",
                    "success",
                )
                return redirect_to(url_for("billing.credit"))
        elif not plan.lines() and not plan.errors:
            plan.errors.append("Enter an amount to apply on at least one invoice.")
        return render("billing/credit.html", status=422, plan=plan, form=form, typed=typed)
    return render("billing/credit.html", plan=plan, form=form, typed=typed)
