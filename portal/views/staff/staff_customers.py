"""Customers, their sites and contacts, and each contact's portal access (back office)."""

from flask import Blueprint, abort, flash, request, url_for

from ... import clock
from ...forms import ActionForm
from ...forms.staff import (
    NO_SITE,
    AccessForm,
    ContactForm,
    CustomerForm,
    SiteChoiceForm,
    SiteForm,
)
from ...forms.staff_money import ApplyCreditForm
from ...models import Contact, Customer, Site
from ...services import access, backoffice, contact_notices, settings, statement_mail
from ...services import orders as orders_service
from ...services import quotes as quotes_service
from ...services.backoffice import Problem
from ...web import page_number, redirect_to, render, search_text
from . import staff_view_as
from ._common import attach, form_page, get_or_404, guard, me, site_choices, site_options

bp = Blueprint("staff_customers", __name__, url_prefix="/staff/customers")
guard(bp)

CUSTOMER_FIELDS = (
    "account_number",
    "name",
    "email",
    "phone",
    "address",
    "portal_enabled",
    "allow_self_registration",
    "auto_invite",
)


@bp.get("/")
def index():
    """Customers with active search (a plain GET form; htmx swaps only the results)."""
    q = search_text()
    page = backoffice.paginate(backoffice.search_customers(q), page_number())
    return render("staff/customers/index.html", block="results", q=q, page=page)


@bp.get("/options")
def options():
    """Suggestions for a staff form's customer box, as the datalist htmx swaps in."""
    found = backoffice.customer_suggestions(request.args.get("customer", ""))
    return render(
        "staff/customers/_options.html", labels=[backoffice.customer_label(c) for c in found]
    )


# --- customers --------------------------------------------------------------------------


@bp.get("/sites")
def sites():
    """The site options of the customer typed in a form's customer box (htmx refreshes
    them when it changes)."""
    form = SiteChoiceForm(formdata=None)
    form.customer.data = request.args.get("customer", "")
    site_choices(form)
    chosen = request.args.get("site_id", type=int)
    form.site_id.data = chosen if chosen in {c.value for c in form.site_id.choices} else 0
    return render("staff/customers/_sites.html", form=form)


def _customer_values(form) -> dict:
    values = {name: getattr(form, name).data for name in CUSTOMER_FIELDS}
    for name in ("account_number", "name", "email", "phone", "address"):
        values[name] = (values[name] or "").strip()
    values["account_number"] = values["account_number"].upper()
    values["email"] = values["email"].lower()
    return values


@bp.route("/new", methods=["GET", "POST"])
def new():
    """Create a customer account."""
    form = CustomerForm() if request.method == "POST" else CustomerForm(portal_enabled=True)

    def save():
        customer = backoffice.create_customer(_customer_values(form), me())
        return f"Customer {customer.name} created.", _show_url(customer.id)

    return form_page(form, "staff/customers/form.html", save, customer=None)


def _show_url(customer_id: int) -> str:
    return url_for("staff_customers.show", customer_id=customer_id)


@bp.get("/<int:customer_id>")
def show(customer_id):
    """A customer: details, account options, sites and contacts with their portal access."""
    customer = get_or_404(Customer, customer_id)
    return render(
        "staff/customers/show.html",
        **_overview(customer),
        today=clock.business_today(),
        action_form=ActionForm(),
        credit_form=ApplyCreditForm(formdata=None),
        quote_status=quotes_service.status_of,
        quote_labels=quotes_service.STAFF_QUOTE_LABELS,
        order_labels=orders_service.STATUS_LABELS,
        **staff_view_as.customer_page(customer),  # view as customer, statement (issue 19)
    )


def _overview(customer) -> dict:
    """The customer page's facts, with each contact's email notices and the last statement
    emailed (staff answer "why did I not get it")."""
    overview = backoffice.customer_overview(customer)
    overview["notices"] = contact_notices.for_contacts(overview["contacts"])
    overview["last_statement"] = statement_mail.last_sent(customer)
    return overview


@bp.post("/<int:customer_id>/statement")
def email_statement(customer_id):
    """Email the customer's statement now to its contacts who want it (once a day)."""
    customer = get_or_404(Customer, customer_id)
    if not ActionForm().validate():
        abort(400)
    if not customer.portal_enabled:
        # Its statement and pay links would open pages nobody there may see (quick pay too).
        flash(
            f"No statement was sent: the portal is switched off for {customer.name}, so its "
            "links would lead nowhere. Switch the portal on first.",
            "warning",
        )
        return redirect_to(_show_url(customer.id) + "#contacts")
    try:
        row = statement_mail.send_now(customer, me())
    except statement_mail.AlreadySent as done:
        flash(_already_sent(done.row), "info")
    else:
        if row.sent_to:
            flash(f"Statement emailed to {', '.join(row.sent_to.splitlines())}.", "success")
        else:
            flash(
                "No statement was sent: none of this customer's contacts gets statements "
                "(billing contacts who have not turned them off; see Contacts below).",
                "warning",
            )
    return redirect_to(_show_url(customer.id) + "#contacts")


def _already_sent(row) -> str:
    to = ", ".join(row.sent_to.splitlines()) or "nobody"
    return f"Today's statement was already emailed (to {to}); it goes once a day."


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
def edit(customer_id):
    """Change a customer's details and account-class options (audited)."""
    customer = get_or_404(Customer, customer_id)
    form = CustomerForm(obj=customer)

    def save():
        changed = backoffice.update_customer(customer, _customer_values(form), me())
        return ("Customer saved." if changed else "Nothing changed."), _show_url(customer.id)

    return form_page(form, "staff/customers/form.html", save, customer=customer)


# --- sites ------------------------------------------------------------------------------


def _site_values(form) -> dict:
    return {
        "site_code": form.site_code.data.strip().upper(),
        "name": form.name.data.strip(),
        "address": (form.address.data or "").strip(),
    }


@bp.route("/<int:customer_id>/sites/new", methods=["GET", "POST"])
def new_site(customer_id):
    """Add a site to a customer."""
    customer = get_or_404(Customer, customer_id)
    form = SiteForm()

    def save():
        site = backoffice.create_site(customer, _site_values(form), me())
        return f"Site {site.name} added.", _show_url(customer.id) + "#sites"

    return form_page(form, "staff/customers/site_form.html", save, customer=customer, site=None)


@bp.route("/sites/<int:site_id>/edit", methods=["GET", "POST"])
def edit_site(site_id):
    """Change a site (audited)."""
    site = get_or_404(Site, site_id)
    form = SiteForm(obj=site)

    def save():
        backoffice.update_site(site, _site_values(form), me())
        return "Site saved.", _show_url(site.customer_id)

    return form_page(
        form, "staff/customers/site_form.html", save, customer=site.customer, site=site
    )


# --- contacts ---------------------------------------------------------------------------


def _contact_form(customer, contact=None):
    form = ContactForm(obj=contact) if contact else ContactForm()
    form.site_id.choices = [NO_SITE] + site_options(customer.sites.order_by(Site.site_code))
    if request.method == "GET" and contact is not None:
        form.site_id.data = contact.site_id or 0
    return form


def _contact_values(form) -> dict:
    return {
        "first_name": (form.first_name.data or "").strip(),
        "last_name": (form.last_name.data or "").strip(),
        "email": (form.email.data or "").strip(),
        "phone": (form.phone.data or "").strip(),
        "site_id": form.site_id.data or None,
    }


@bp.route("/<int:customer_id>/contacts/new", methods=["GET", "POST"])
def new_contact(customer_id):
    """Add a contact; the account class may invite them to the portal at once."""
    customer = get_or_404(Customer, customer_id)
    form = _contact_form(customer)

    def save():
        contact = backoffice.create_contact(customer, _contact_values(form), me())
        invited = _auto_invite(contact)
        message = f"{contact.full_name} added" + (" and invited to the portal." if invited else ".")
        return message, _show_url(customer.id)

    return form_page(
        form, "staff/customers/contact_form.html", save, customer=customer, contact=None
    )


def _auto_invite(contact) -> bool:
    try:
        return access.on_contact_created(contact, me()) is not None
    except Problem as problem:
        flash(f"The contact was added, but not invited: {problem.message}", "warning")
        return False


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
def edit_contact(contact_id):
    """Change a contact (their email is also their portal login)."""
    contact = get_or_404(Contact, contact_id)
    form = _contact_form(contact.customer, contact)

    def save():
        backoffice.update_contact(contact, _contact_values(form), me())
        return "Contact saved.", _show_url(contact.customer_id)

    return form_page(
        form, "staff/customers/contact_form.html", save, customer=contact.customer, contact=contact
    )


@bp.post("/contacts/<int:contact_id>/billing")
def contact_billing(contact_id):
    """Make a contact a billing contact, or stop its billing mail (audited)."""
    contact = get_or_404(Contact, contact_id)
    if not ActionForm().validate() or request.form.get("billing") not in ("on", "off"):
        abort(400)
    on = request.form["billing"] == "on"
    if contact_notices.set_billing(contact, on, me()):
        flash(
            f"{contact.full_name} is a billing contact: new invoices, reminders and statements."
            if on
            else f"{contact.full_name} no longer gets billing mail.",
            "success",
        )
    return redirect_to(_show_url(contact.customer_id) + "#contacts")


# --- portal access ----------------------------------------------------------------------


def _access_form(contact, user):
    customer_sites = list(contact.customer.sites.order_by(Site.site_code))
    if request.method == "POST":
        form = AccessForm()
    elif user is not None:
        form = AccessForm(
            data={
                "roles": sorted(user.role_set),
                "scope": "all" if user.all_sites else "sites",
                "site_ids": list(user.site_ids or []),
            }
        )
    else:
        form = AccessForm(data={"roles": list(settings.get("default_roles")), "scope": "all"})
    form.site_ids.choices = site_options(customer_sites)
    return form


def _access_page(contact, user, form, status=200):
    return render(
        "staff/customers/access.html",
        block="form",
        status=status,
        contact=contact,
        customer=contact.customer,
        user=user,
        form=form,
        action_form=ActionForm(),
        status_labels=access.STATUS_LABELS,
    )


@bp.route("/contacts/<int:contact_id>/access", methods=["GET", "POST"])
def portal_access(contact_id):
    """A contact's portal login: invite, or change roles and site scope."""
    contact = get_or_404(Contact, contact_id)
    user = backoffice.portal_user_of(contact)
    form = _access_form(contact, user)
    if request.method == "POST" and form.validate():
        site_ids = form.site_ids.data if form.scope.data == "sites" else None
        try:
            if user is None:
                access.invite(contact, form.roles.data, site_ids, me())
                flash(f"Invitation sent to {contact.email}.", "success")
            else:
                access.set_access(user, form.roles.data, site_ids, me())
                flash("Portal access saved.", "success")
        except Problem as problem:
            if problem.field == "sites":
                problem.field = "site_ids"
            attach(form, problem)
        else:
            return redirect_to(url_for("staff_customers.portal_access", contact_id=contact.id))
    status = 422 if request.method == "POST" else 200
    return _access_page(contact, user, form, status)


ACTIONS = {
    "resend": (access.resend_invitation, "A new invitation is on its way."),
    "deactivate": (access.deactivate, "The login is deactivated; its sessions have ended."),
    "reactivate": (access.reactivate, "The login is active again."),
}


@bp.post("/contacts/<int:contact_id>/access/<action>")
def access_action(contact_id, action):
    """Resend an invitation, deactivate or reactivate a contact's login."""
    contact = get_or_404(Contact, contact_id)
    user = backoffice.portal_user_of(contact)
    if action not in ACTIONS or user is None:
        abort(404)
    ActionForm().validate()
    function, message = ACTIONS[action]
    try:
        function(user, me())
    except Problem as problem:
        flash(problem.message, "error")
    else:
        flash(message, "success")
    return redirect_to(url_for("staff_customers.portal_access", contact_id=contact.id))
