"""Payments in the back office: list and filter, offline confirmations, voids, flagged
credits, and the CSV export for the accounting system (marking payments posted)."""

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, make_response, request, url_for
from werkzeug.datastructures import MultiDict

from ... import money
from ...forms import ActionForm
from ...forms.staff import NoteForm, PaymentFilterForm, VoidForm
from ...forms.staff_money import ApplyCreditForm, ConfirmOfflineForm, RefundForm
from ...models import Customer, Invoice, Payment, PaymentApplication
from ...services import backoffice, payments, stripe_provider
from ...services.payments import PaymentError
from ...web import page_number, redirect_to, render
from ._common import get_or_404, guard, me

bp = Blueprint("staff_payments", __name__, url_prefix="/staff/payments")
guard(bp)

STAMP = "%Y%m%dT%H%M%SZ"


def _filters() -> PaymentFilterForm:
    form = PaymentFilterForm(MultiDict(request.args))
    form.validate()
    return form


@bp.get("/")
def index():
    """Payments with filters (a GET form; htmx swaps only the results)."""
    form = _filters()
    statuses = {choice.value for choice in form.status.choices}
    page = backoffice.payment_page(
        page_number(),
        q=form.q.data or "",
        status=form.status.data if form.status.data in statuses else "",
        flagged=bool(form.flagged.data),
        posted=form.posted.data or "",
        start=None if form.start.errors else form.start.data,
        end=None if form.end.errors else form.end.data,
    )
    counts = {
        "pending": Payment.select().where(Payment.status == "pending").count(),
        "flagged": Payment.select().where(Payment.flagged == True).count(),  # noqa: E712
    }
    return render(
        "staff/payments/index.html",
        block="results",
        form=form,
        filters={choice.value: choice.label for choice in form.status.choices},
        page=page,
        counts=counts,
        unposted=backoffice.unposted_count(),
        exports=backoffice.past_exports(),
        stamp_format=STAMP,
        action_form=ActionForm(),
        stripe=stripe_provider.status(),
    )


def _confirm_form(payment, formdata=None) -> ConfirmOfflineForm:
    form = ConfirmOfflineForm(formdata=formdata)
    if formdata is None:
        form.amount.data = str(money.to_decimal(payment.amount_cents))
        form.received_on.data = payments.today()
    return form


def _show(
    payment,
    status=200,
    reject_form=None,
    void_form=None,
    note_form=None,
    confirm_form=None,
    refund_form=None,
):
    return render(
        "staff/payments/show.html",
        status=status,
        payment=payment,
        intended=payments.intended_items(payment),
        refunds=list(payment.refunds),
        confirm_form=confirm_form or _confirm_form(payment),
        refund_form=refund_form or RefundForm(formdata=None),
        applications=list(
            PaymentApplication.select(PaymentApplication, Invoice)
            .join(Invoice)
            .where(PaymentApplication.payment == payment.id)
            .order_by(PaymentApplication.id)
        ),
        reject_form=reject_form or VoidForm(prefix="reject"),
        void_form=void_form or VoidForm(prefix="void"),
        note_form=note_form or NoteForm(),
        action_form=ActionForm(),
    )


@bp.get("/<int:payment_id>")
def show(payment_id):
    """One payment: where it was applied, and what staff can do with it."""
    return _show(get_or_404(Payment, payment_id))


def _act(payment, function, *args, success: str):
    try:
        function(payment, me(), *args)
    except PaymentError as exc:
        flash(str(exc), "error")
    else:
        flash(success, "success")
    return redirect_to(url_for("staff_payments.show", payment_id=payment.id))


@bp.post("/<int:payment_id>/confirm")
def confirm(payment_id):
    """The money arrived: apply what arrived to the invoices the payer meant (less: oldest
    due first, the rest stays due; more: kept as credit) and send the receipt."""
    payment = get_or_404(Payment, payment_id)
    form = _confirm_form(payment, request.form)
    if form.validate():
        try:
            payments.confirm_offline(payment, me(), form.amount.cents, form.received_on.data)
        except PaymentError as exc:
            if exc.field == "payment":  # no longer pending: someone else decided it
                flash(exc.message, "error")
                return redirect_to(url_for("staff_payments.show", payment_id=payment.id))
            field = form.received_on if exc.field == "received_on" else form.amount
            field.errors = [*field.errors, exc.message]
        else:
            flash("Payment confirmed and applied.", "success")
            return redirect_to(url_for("staff_payments.show", payment_id=payment.id))
    return _show(payment, status=422, confirm_form=form)


@bp.post("/<int:payment_id>/refund")
def refund(payment_id):
    """Record money given back out of this payment's credit (audited, the payer emailed)."""
    payment = get_or_404(Payment, payment_id)
    form = RefundForm()
    if form.validate():
        try:
            payments.record_refund(
                payment,
                me(),
                form.amount.cents,
                (form.reference.data or "").strip(),
                form.note.data.strip(),
            )
        except PaymentError as exc:
            form.amount.errors = [*form.amount.errors, exc.message]
        else:
            flash("Refund recorded; the credit is reduced.", "success")
            return redirect_to(url_for("staff_payments.show", payment_id=payment.id))
    return _show(payment, status=422, refund_form=form)


@bp.post("/customers/<int:customer_id>/apply-credit")
def apply_credit(customer_id):
    """Apply part of a customer's credit to its open invoices, oldest due first."""
    customer = get_or_404(Customer, customer_id)
    form = ApplyCreditForm()
    if form.validate():
        try:
            payments.apply_credit_oldest_first(customer, form.amount.cents, me())
        except PaymentError as exc:
            flash(exc.message, "error")
        else:
            flash("Credit applied to the oldest invoices.", "success")
    else:
        flash(next(iter(form.errors.values()))[0], "error")
    return redirect_to(url_for("staff_customers.show", customer_id=customer.id) + "#credit")


@bp.post("/<int:payment_id>/reject")
def reject(payment_id):
    """The money never arrived: reject a pending offline payment (a reason is required)."""
    payment = get_or_404(Payment, payment_id)
    form = VoidForm(prefix="reject")
    if not form.validate():
        return _show(payment, status=422, reject_form=form)
    return _act(payment, payments.reject_offline, form.reason.data.strip(), success="Rejected.")


@bp.post("/<int:payment_id>/void")
def void(payment_id):
    """Void an applied payment: its applications come off the invoices."""
    payment = get_or_404(Payment, payment_id)
    form = VoidForm(prefix="void")
    if not form.validate():
        return _show(payment, status=422, void_form=form)
    return _act(
        payment,
        payments.void_payment,
        form.reason.data.strip(),
        success="Payment voided; the invoices are open again.",
    )


@bp.post("/<int:payment_id>/resolve")
def resolve(payment_id):
    """Clear the flag of an unapplied credit, with a note of what was done about it."""
    payment = get_or_404(Payment, payment_id)
    form = NoteForm()
    if not form.validate():
        return _show(payment, status=422, note_form=form)
    return _act(payment, payments.resolve_flag, form.note.data.strip(), success="Flag cleared.")


def _csv_response(text: str, stamp: datetime):
    response = make_response(text)
    response.mimetype = "text/csv"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="payments-{stamp.strftime(STAMP)}.csv"'
    )
    return response


@bp.post("/export")
def export():
    """Download the applied payments not yet exported, and mark them posted."""
    ActionForm().validate()
    result = backoffice.export_payments(me())
    if result is None:
        flash("There are no new payments to export.", "info")
        return redirect_to(url_for("staff_payments.index"))
    stamp, text = result
    return _csv_response(text, stamp)


@bp.get("/exports/<stamp>")
def export_again(stamp):
    """Download a past export again (it changes nothing)."""
    try:
        when = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError:
        abort(404)
    text = backoffice.export_again(when)
    if text is None:
        abort(404)
    return _csv_response(text, when)
