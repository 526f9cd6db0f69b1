"""Support cases in the back office: the queue, one case with its conversation, answers."""

from flask import Blueprint, flash, request, url_for

from ...forms.cases import CaseDetailsForm, StaffReplyForm
from ...models import Case
from ...services import backoffice, cases
from ...web import choice, page_number, redirect_to, render, search_text
from ..cases import unless_changed
from ._common import get_or_404, guard, me

bp = Blueprint("staff_cases", __name__, url_prefix="/staff/cases")
guard(bp)
FILTERS = {"open": "Open", "resolved": "Resolved", "closed": "Closed", "all": "All"}


@bp.get("/")
def index():
    """Cases waiting for the office first; search by number, subject or customer; filter by
    category, priority and owner ("assigned to me"), with counts of each."""
    q = search_text()
    status = choice("status", FILTERS, "open")
    owner = request.args.get("owner", "")
    owner = owner if owner in ("me", "none") or owner.isdigit() else ""
    picked = {
        "category": request.args.get("category", "")[:60],
        "priority": choice("priority", cases.PRIORITIES, ""),
        "owner": owner,
    }
    query = cases.staff_search(q, status, staff_id=me().id, **picked)
    page = backoffice.paginate(query, page_number())
    return render(
        "staff/cases/index.html",
        block="results",
        q=q,
        current=status,
        filters=FILTERS,
        page=page,
        labels=cases.STAFF_STATUS_LABELS,
        picked=picked,
        counts=cases.queue_counts(status, me().id),
        categories=cases.categories(),
        priorities=cases.PRIORITIES,
    )


def _show(case, form, status=200, block="reply", details=None):
    messages = cases.messages(case, internal=True)
    return render(
        "staff/cases/show.html",
        block=block,
        version=cases.thread_version(case, internal=True),
        status=status,
        case=case,
        messages=messages,
        files=cases.files_of(messages),
        details=details
        or CaseDetailsForm(
            case,
            data={
                "category": case.category,
                "priority": case.priority,
                "assigned_to": str(case.assigned_to_id or ""),
            },
        ),
        priorities=cases.PRIORITIES,
        form=form,
        labels=cases.STAFF_STATUS_LABELS,
    )


@bp.get("/<int:case_id>")
def show(case_id):
    """One case with every message, internal notes included, and the answer form."""
    case = get_or_404(Case, case_id)
    # Answering usually moves a new case to "waiting for the customer".
    default = "waiting" if case.status in ("new", "open") else case.status
    form = StaffReplyForm(status=default)
    form.status.object_data = case.status
    return _show(case, form)


@bp.get("/<int:case_id>/live")
def live(case_id):
    """The conversation alone, polled by the open page: 304 when nothing changed."""
    case = get_or_404(Case, case_id)
    version = cases.thread_version(case, internal=True)
    return unless_changed(version, lambda: _show(case, StaffReplyForm(), block="live"))


@bp.post("/<int:case_id>/reply")
def reply(case_id):
    """Answer the customer, or add an internal note, and set the status."""
    case = get_or_404(Case, case_id)
    form = StaffReplyForm()
    form.status.object_data = case.status
    if not form.validate():
        return _show(case, form, 422)
    cases.staff_reply(
        case,
        me(),
        form.body.data,
        form.status.data,
        internal=form.internal.data,
        files=form.files.prepared,
    )
    if form.internal.data:
        flash("Internal note added.", "success")
    else:
        flash(f"Case {case.number} updated; the customer was emailed.", "success")
    return redirect_to(url_for("staff_cases.show", case_id=case.id))


@bp.post("/<int:case_id>/details")
def details(case_id):
    """Set the case's category, priority and owner."""
    case = get_or_404(Case, case_id)
    form = CaseDetailsForm(case)
    if not form.validate():
        return _show(case, StaffReplyForm(), 422, block="details", details=form)
    changed = cases.set_details(
        case, me(), form.category.data, form.priority.data, form.assigned_to.data
    )
    flash("Case details saved." if changed else "Nothing changed.", "success")
    return redirect_to(url_for("staff_cases.show", case_id=case.id))
