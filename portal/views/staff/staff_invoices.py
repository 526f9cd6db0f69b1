"""Invoices in the back office: list and search, create, edit, void, new quick-pay code, print."""

from datetime import timedelta

import segno
from flask import Blueprint, abort, flash, request, url_for

from ... import clock
from ...forms import ActionForm
from ...forms.staff import InvoiceForm, VoidForm
from ...models import Invoice, InvoiceLine, Payment, PaymentApplication
from ...money import to_decimal
from ...security import format_code, unseal
from ...services import backoffice, figures, quickpay, reminders
from ...services.backoffice import Problem
from ...web import choice, page_number, redirect_to, render, search_text
from ._common import attach, chosen_customer, get_or_404, guard, me, site_choices

bp = Blueprint("staff_invoices", __name__, url_prefix="/staff/invoices")
guard(bp)

STATES = [("", "All"), ("open", "Open"), ("overdue", "Overdue"), ("paid", "Paid"), ("void", "Void")]
BLANK_LINES = 3


@bp.get("/")
def index():
    """Invoices with search and a state filter (GET form; htmx swaps only the results)."""
    q = search_text()
    state = choice("state", dict(STATES), "")
    page = backoffice.invoice_page(q, state, clock.business_today(), page_number())
    return render(
        "staff/invoices/index.html",
        block="results",
        q=q,
        state=state,
        states=STATES,
        page=page,
        today=clock.business_today(),
    )


# --- create and edit --------------------------------------------------------------------


def _pad(form, minimum=BLANK_LINES):
    """Blank line rows to type into (without JavaScript, 'More lines' adds rows)."""
    blank = sum(1 for line in form.lines if line.form.is_blank)
    for _ in range(max(0, minimum - blank)):
        form.lines.append_entry()


def _form_page(form, invoice=None, status=200):
    return render(
        "staff/invoices/form.html", block="form", status=status, form=form, invoice=invoice
    )


def _submitted(form) -> bool:
    """True when the post is a save (not the no-JS 'More lines' button) and it validates."""
    if request.form.get("action") == "more":
        _pad(form, BLANK_LINES + 1)
        return False
    return form.validate()


@bp.route("/new", methods=["GET", "POST"])
def new():
    """Create an invoice (with lines, or just a total) and its quick-pay code."""
    if request.method == "GET":
        today = clock.business_today()
        chosen = chosen_customer()
        form = InvoiceForm(
            data={
                "customer": backoffice.customer_label(chosen) if chosen else "",
                "issue_date": today,
                "due_date": today + timedelta(days=30),
            }
        )
    else:
        form = InvoiceForm()
    site_choices(form)
    if request.method == "POST" and _submitted(form):
        try:
            invoice, _ = backoffice.create_invoice(form.values(), form.line_values(), me())
        except Problem as problem:
            attach(form, problem)
        else:
            flash(f"Invoice {invoice.number} created with a new quick-pay code.", "success")
            return redirect_to(url_for("staff_invoices.show", invoice_id=invoice.id))
    _pad(form)
    status = 422 if request.method == "POST" and request.form.get("action") != "more" else 200
    return _form_page(form, status=status)


def _edit_data(invoice) -> dict:
    return {
        "number": invoice.number,
        "customer": backoffice.customer_label(invoice.customer),
        "site_id": invoice.site_id or 0,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "currency": invoice.currency,
        "total": f"{to_decimal(invoice.total_cents)}",
        "discount_percent": f"{invoice.discount_bp / 100:g}" if invoice.discount_bp else "",
        "discount_days": str(invoice.discount_days) if invoice.discount_bp else "",
        "description": invoice.description,
        "lines": [
            {
                "item_code": line.item_code,
                "description": line.description,
                "quantity": f"{line.quantity_milli / 1000:g}",
                "unit_price": f"{to_decimal(line.unit_price_cents)}",
            }
            for line in invoice.lines.order_by(InvoiceLine.position)
        ],
    }


@bp.route("/<int:invoice_id>/edit", methods=["GET", "POST"])
def edit(invoice_id):
    """Edit an open invoice; the total never drops below what has been paid."""
    invoice = get_or_404(Invoice, invoice_id)
    if invoice.status == "void":
        flash("A void invoice cannot be changed.", "error")
        return redirect_to(url_for("staff_invoices.show", invoice_id=invoice.id))
    form = InvoiceForm() if request.method == "POST" else InvoiceForm(data=_edit_data(invoice))
    site_choices(form)
    if request.method == "POST" and _submitted(form):
        try:
            changed = backoffice.update_invoice(invoice, form.values(), form.line_values(), me())
        except Problem as problem:
            attach(form, problem)
        else:
            flash("Invoice saved." if changed else "Nothing changed.", "success")
            return redirect_to(url_for("staff_invoices.show", invoice_id=invoice.id))
    _pad(form, 1)
    status = 422 if request.method == "POST" and request.form.get("action") != "more" else 200
    return _form_page(form, invoice=invoice, status=status)


# --- one invoice ------------------------------------------------------------------------


def _payments(invoice):
    return list(
        PaymentApplication.select(PaymentApplication, Payment)
        .join(Payment)
        .where(PaymentApplication.invoice == invoice.id)
        .order_by(Payment.received_at)
    )


@bp.get("/<int:invoice_id>")
def show(invoice_id):
    """An invoice: lines, payments, state, quick-pay code and actions."""
    invoice = get_or_404(Invoice, invoice_id)
    return _show_page(invoice, VoidForm())


def _show_page(invoice, void_form, status=200):
    return render(
        "staff/invoices/show.html",
        status=status,
        invoice=invoice,
        lines=list(invoice.lines.order_by(InvoiceLine.position)),
        payments=_payments(invoice),
        pending=figures.pending_by_invoice([invoice.id]).get(invoice.id, []),
        reminders=reminders.history(invoice),
        today=clock.business_today(),
        void_form=void_form,
        action_form=ActionForm(),
        code=_code(invoice),
    )


def _code(invoice) -> str:
    code = unseal(invoice.quick_pay_sealed) if invoice.quick_pay_sealed else None
    return format_code(code) if code else ""


@bp.post("/<int:invoice_id>/void")
def void(invoice_id):
    """Void an invoice nobody is paying (a reason goes to the audit log)."""
    invoice = get_or_404(Invoice, invoice_id)
    form = VoidForm()
    if form.validate():
        try:
            backoffice.void_invoice(invoice, form.reason.data.strip(), me())
        except Problem as problem:
            form.reason.errors = [problem.message]
        else:
            flash(f"Invoice {invoice.number} is void; its pay links no longer work.", "success")
            return redirect_to(url_for("staff_invoices.show", invoice_id=invoice.id))
    return _show_page(invoice, form, status=422)


@bp.post("/<int:invoice_id>/code")
def regenerate(invoice_id):
    """Give the invoice a new quick-pay code; the old code and every pay link stop working."""
    invoice = get_or_404(Invoice, invoice_id)
    if not ActionForm().validate():
        abort(400)
    try:
        code = backoffice.regenerate_code(invoice, me())
    except Problem as problem:
        flash(problem.message, "error")
    else:
        flash(
            f"New quick-pay code {format_code(code)}: the old code and pay links no longer work.",
            "success",
        )
    return redirect_to(url_for("staff_invoices.show", invoice_id=invoice.id))


@bp.get("/<int:invoice_id>/print")
def print_view(invoice_id):
    """A printable invoice with its quick-pay code and a QR code of its pay link."""
    invoice = get_or_404(Invoice, invoice_id)
    code = _code(invoice)
    link = quickpay.pay_link(invoice) if invoice.status == "open" else ""
    qr = segno.make(link, error="m").svg_data_uri(scale=3) if link else ""
    return render(
        "staff/invoices/print.html",
        invoice=invoice,
        lines=list(invoice.lines.order_by(InvoiceLine.position)),
        code=code,
        link=link,
        qr=qr,
        today=clock.business_today(),
    )
