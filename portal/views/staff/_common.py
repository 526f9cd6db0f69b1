"""Helpers every back-office blueprint shares: deny-by-default guard, form errors, pages."""

from flask import abort, flash, request
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from ...auth import staff_required
from ...forms.staff import NO_SITE
from ...models import Customer, Site
from ...services.backoffice import Problem
from ...web import redirect_to, render


def guard(bp, admin: bool = False) -> None:
    """Deny by default (checklist E5): every route of `bp`, htmx partials included, needs a
    signed-in staff user (and an admin when `admin`), whatever decorators its views carry."""

    @staff_required(admin=admin)
    def check():
        return None

    bp.before_request(check)


def attach(form, problem) -> None:
    """Show a service `Problem` next to its field, or above the form when it names none."""
    field = getattr(form, problem.field, None) if problem.field else None
    if field is not None:
        field.errors = list(field.errors or []) + [problem.message]
    else:
        form.form_errors.append(problem.message)


def chosen_customer():
    """The customer a "New …" link came from (`?customer_id=` on a customer's page), or None."""
    return Customer.get_or_none(Customer.id == request.args.get("customer_id", type=int))


def site_choices(form, customer=None) -> None:
    """The site options of the customer the form's customer box names (none until it names
    one); set before validation, so a posted site is checked against that customer's."""
    if customer is None:
        customer, _ = form.customer.resolve()
    sites = Site.select().where(Site.customer == (customer.id if customer else 0))
    form.site_id.choices = [NO_SITE] + site_options(sites.order_by(Site.site_code))


def site_options(sites) -> list[SelectChoice]:
    """One option per site, by id, labelled with its code and name."""
    return [SelectChoice(s.id, f"{s.site_code} · {s.name}") for s in sites]


def get_or_404(model, object_id):
    """One row by primary key, or 404."""
    row = model.get_or_none(model.id == object_id)
    if row is None:
        abort(404)
    return row


def me():
    """The signed-in staff user as a model instance."""
    return current_user._get_current_object()


def form_page(form, template: str, save, **context):
    """The create/edit page: GET shows the form; a valid POST runs `save()`, which returns
    (message, where to go next); a service `Problem` lands next to its field with a 422."""
    if request.method == "POST" and form.validate():
        try:
            message, url = save()
        except Problem as problem:
            attach(form, problem)
        else:
            flash(message, "success")
            return redirect_to(url)
    status = 422 if request.method == "POST" else 200
    return render(template, block="form", status=status, form=form, **context)
