"""The requests queue: access requests and self-registrations waiting for staff."""

from flask import Blueprint, abort, flash, url_for
from wtforms import StringField
from wtforms.validators import Length, Optional

from ...forms import ActionForm
from ...models import AccessRequest, Contact, Customer, PortalUser
from ...services import access
from ...services.backoffice import Problem
from ...web import redirect_to, render
from ._common import get_or_404, guard, me

bp = Blueprint("staff_queue", __name__, url_prefix="/staff/requests")
guard(bp)


class ApproveRequestForm(ActionForm):
    """Approve an access request, naming the customer when its account number matched none."""

    account_number = StringField("Customer account number", validators=[Optional(), Length(max=50)])


class RejectForm(ActionForm):
    """Reject with an optional note for the person."""

    note = StringField("Note to the person (optional)", validators=[Optional(), Length(max=500)])


def _page(status=200, errors=None):
    requests_ = list(
        AccessRequest.select()
        .where(AccessRequest.status == "pending")
        .order_by(AccessRequest.created_at)
    )
    registrations = list(
        PortalUser.select(PortalUser, Contact, Customer)
        .join(Contact)
        .join(Customer)
        .where(PortalUser.status == "pending")
        .order_by(PortalUser.created_at)
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
        access.approve_request(row, me(), customer=customer)
    except Problem as problem:
        return _page(422, {row.id: problem.message})
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
