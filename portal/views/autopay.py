"""Autopay, for a company's administrators: charge due invoices to a saved card."""

from flask import Blueprint, abort, flash, url_for
from flask_login import current_user

from .. import money
from ..auth import customer_required
from ..forms import ActionForm
from ..forms.autopay import AutopayForm
from ..services import autopay, saved_methods
from ..web import redirect_to, render

bp = Blueprint("autopay", __name__, url_prefix="/company/autopay")


def _enabled_or_404() -> None:
    if not autopay.enabled():
        abort(404)


def _page(form=None, status=200):
    customer = current_user.customer
    enrolment = autopay.for_customer(customer.id)
    cards = saved_methods.methods_for(customer.id)
    if form is None:
        form = AutopayForm(formdata=None)
        if enrolment is not None:
            form.method.data = str(enrolment.method_id or "")
            form.max_amount.data = autopay.plain_amount(enrolment.max_cents)
            form.timing.data = enrolment.timing
            form.days_before.data = str(enrolment.days_before or 3)
    form.offer(cards)
    currency = enrolment.currency if enrolment else autopay.customer_currency(customer.id)
    return render(
        "autopay/show.html",
        status=status,
        customer=customer,
        enrolment=enrolment,
        cards=cards,
        form=form,
        action_form=ActionForm(),
        currency=currency,
        consent=autopay.CONSENT.format(
            company=autopay.company_name(),
            card="the card chosen above",
            customer=customer.name,
            currency=currency,
            limit="the maximum above",
            when="at the time chosen above",
            retries=autopay.MAX_TRIES - 1,
            stop=autopay.DISABLE_AFTER,
        ),
        consent_version=autopay.CONSENT_VERSION,
        accepted=autopay.last_consent(customer.id),
        already_due=autopay.already_due(
            customer.id, enrolment if enrolment and enrolment.active else None
        ),
        charges=autopay.charges_for(customer.id),
    )


@bp.get("/")
@customer_required("company_admin")
def show():
    """Whether autopay is on, with what, the charges it made, and the form to change it."""
    _enabled_or_404()
    return _page()


@bp.post("/")
@customer_required("company_admin")
def update():
    """Turn autopay on, or change its card, maximum or timing (a new acceptance each time)."""
    _enabled_or_404()
    form = AutopayForm()
    form.offer(saved_methods.methods_for(current_user.customer.id))
    if not form.validate():
        return _page(form, status=422)
    try:
        terms = autopay.terms_from(
            current_user.customer.id,
            form.method.data,
            form.max_amount.data,
            form.timing.data,
            form.days_before.data,
        )
        autopay.enrol(current_user, terms, bool(form.consent.data))
    except autopay.AutopayError as exc:
        getattr(form, exc.field).errors = [exc.message]
        return _page(form, status=422)
    flash(
        f"Autopay is on: {terms.method.label}, up to "
        f"{money.format_cents(terms.max_cents, terms.currency)} per invoice, {terms.when}.",
        "success",
    )
    return redirect_to(url_for("autopay.show"))


@bp.post("/off")
@customer_required("company_admin")
def turn_off():
    """Turn autopay off; nothing more is charged."""
    _enabled_or_404()
    if not ActionForm().validate():
        abort(400)
    autopay.turn_off(current_user)
    flash("Autopay is off. Nothing more will be charged.", "success")
    return redirect_to(url_for("autopay.show"))
