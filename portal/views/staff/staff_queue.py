"""The requests queue: access requests and self-registrations waiting for staff."""

from flask import Blueprint, abort, flash, url_for
from wtforms import StringField
from wtforms.validators import Length, Optional

from ...forms import ActionForm
from ...models import AccessRequest, Contact, Customer, PortalUser
from ...services import access
from ...services.backoffice import Problem, paginate
from ...web import page_number, redirect_to, render
from ._common import get_or_404, guard, me

bp = Blueprint("staff_queue", __name__, url_prefix="/staff/requests")
guard(bp)


class ApproveRequestForm(ActionForm):
    """Approve an access request, naming the customer when its account number matched none."""

    account_number = StringField("Customer account number", validators=[Optional(), Length(max=50)])


class RejectForm(ActionForm):
    """Reject with an optional note for the person."""

    note = StringField("Note to the person (optional)", validators=[Optional(), Length(max=500)])


# The queue is paged: a flood of guest requests must not make one page megabytes long.
QUEUE_PAGE_SIZE = 25


def _request_facts(rows) -> dict:
    """For each access request: the customer it names, that customer's company admins
    (who will approve the login), and whether the address's domain matches none of the
    customer's contacts (a stranger asking for someone else's account stands out)."""
    facts = {}
    for row in rows:
        customer = access.request_customer(row)
        if customer is None:
            facts[row.id] = {"customer": None, "admins": [], "strange_domain": False}
            continue
        domain = access.email_domain(row.email)
        facts[row.id] = {
            "customer": customer,
            "admins": access.company_admins(customer.id),
            "strange_domain": domain not in access.known_domains(customer.id),
            "domain": domain,
        }
    return facts


def _page(status=200, errors=None):
    requests_ = paginate(
        AccessRequest.select()
        .where(AccessRequest.status == "pending")
        .order_by(AccessRequest.created_at, AccessRequest.id),
        page_number(),
        QUEUE_PAGE_SIZE,
    )
    registrations = paginate(
        PortalUser.select(PortalUser, Contact, Customer)
        .join(Contact)
        .join(Customer)
        .where(PortalUser.status == "pending")
        .order_by(PortalUser.created_at, PortalUser.id),
        page_number("rpage"),
        QUEUE_PAGE_SIZE,
    )
    decided = list(
        AccessRequest.select()
        .where(AccessRequest.status != "pending")
        .order_by(AccessRequest.decided_at.desc())
        .limit(10)
    )
    return render(
        "staff/queue/index.html",
        status=status,
        requests=requests_,
        facts=_request_facts(requests_.rows),
        registrations=registrations,
        decided=decided,
        errors=errors or {},
        action_form=ActionForm(),
    )


@bp.get("/")
def index():
    """Everything waiting for a decision, oldest first."""
    return _page()


@bp.post("/access/<int:request_id>/approve")
def approve_request(request_id):
    """Grant a requested login: the person is invited with the default roles."""
    row = get_or_404(AccessRequest, request_id)
    form = ApproveRequestForm()
    form.validate()
    customer = None
    number = (form.account_number.data or "").strip().upper()
    if number:
        customer = Customer.get_or_none(Customer.account_number == number)
        if customer is None:
            return _page(422, {row.id: "No customer has this account number."})
    try:
        user = access.approve_request(row, me(), customer=customer)
    except Problem as problem:
        return _page(422, {row.id: problem.message})
    if user.status == "pending":
        flash(
            f"{row.name} now waits for the approval of {user.contact.customer.name}'s "
            "company administrators, who are told by email.",
            "success",
        )
    else:
        flash(f"{row.name} is invited to the portal.", "success")
    return redirect_to(url_for("staff_queue.index"))


@bp.post("/access/<int:request_id>/reject")
def reject_request(request_id):
    """Turn an access request down (the person is told politely)."""
    row = get_or_404(AccessRequest, request_id)
    form = RejectForm()
    form.validate()
    try:
        access.reject_request(row, me(), note=form.note.data or "")
    except Problem as problem:
        flash(problem.message, "error")
    else:
        flash(f"The request from {row.name} is declined.", "success")
    return redirect_to(url_for("staff_queue.index"))


@bp.post("/registrations/<int:user_id>/<decision>")
def decide_registration(user_id, decision):
    """Approve or reject a self-registration waiting for approval."""
    user = get_or_404(PortalUser, user_id)
    ActionForm().validate()
    function = {"approve": access.approve_registration, "reject": access.reject_registration}
    if decision not in function:
        abort(404)
    try:
        function[decision](user, me())
    except Problem as problem:
        flash(problem.message, "error")
    else:
        flash(
            f"{user.contact.full_name} is "
            + ("approved and invited." if decision == "approve" else "turned down."),
            "success",
        )
    return redirect_to(url_for("staff_queue.index"))
