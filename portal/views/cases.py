"""Support cases of the signed-in customer: list, open a case, follow it, reply, resolve."""

from flask import Blueprint, abort, flash, make_response, request, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..forms.cases import CaseForm, ReplyForm
from ..ids import from_public_id
from ..services import billing, cases
from ..services.backoffice import paginate
from ..validators import refuse_control_characters
from ..web import choice, page_number, redirect_to, render

bp = Blueprint("cases", __name__, url_prefix="/cases")
cases_required = customer_required("cases", "cases")
FILTERS = {"open": "Open", "closed": "Resolved and closed", "all": "All"}


def _case_or_404(case_id):
    case = cases.case_for(current_user, case_id)
    if case is None:
        abort(404)
    return case


@bp.get("/")
@cases_required
def index():
    """The user's cases, open ones by default; htmx swaps only the list."""
    status = choice("status", FILTERS, "open")
    page = paginate(cases.for_user(current_user, status), page_number())
    return render(
        "cases/index.html",
        block="results",
        page=page,
        current=status,
        filters=FILTERS,
        labels=cases.STATUS_LABELS,
    )


@bp.route("/new", methods=["GET", "POST"])
@cases_required
def new():
    """Open a case, about an invoice or an order when `?invoice=` or `?order=` (its public
    id) names one the user can see."""
    form = CaseForm()
    if not form.request_key.data:
        form.request_key.data = cases.new_request_key()
    invoice = _about(form.invoice, "invoice", billing.invoice_for)
    order = _about(form.order, "order", cases.order_for)
    if request.method == "GET" and (invoice or order) is not None:
        about = f"invoice {invoice.number}" if invoice is not None else f"order {order.number}"
        form.subject.data = f"Question about {about}"
    # The subject becomes the subject of every email about the case (B9).
    if request.method == "POST" and form.validate() and refuse_control_characters(form, "subject"):
        case = cases.create_case(
            current_user,
            form.subject.data,
            form.body.data,
            invoice=invoice,
            order=order,
            files=form.files.prepared,
            category=form.category.data if "category" in form else "",
            request_key=form.request_key.data,
        )
        if case.created:
            flash(f"Case {case.number} is open. We will answer by email.", "success")
        else:
            flash(f"Case {case.number} was already opened from this form.", "info")
        return redirect_to(url_for("cases.show", case_id=case.id))
    status = 422 if request.method == "POST" else 200
    return render(
        "cases/new.html", block="form", status=status, form=form, invoice=invoice, order=order
    )


def _about(field, kind: str, find):
    """What a new case is about: the row a public id in the query string (or, on a post, in
    the hidden field) names, if the user may see it; a token naming anything else is 404."""
    token = field.data if request.method == "POST" else request.args.get(kind)
    if not token:
        return None
    found = find(current_user, from_public_id(kind, token))
    if found is None:
        abort(404)
    field.data = found.public_id
    return found


@bp.get("/<opaque('case'):case_id>")
@cases_required
def show(case_id):
    """One case: its conversation, what it is about, and a reply box."""
    case = _case_or_404(case_id)
    return _show(case, ReplyForm())


@bp.get("/<opaque('case'):case_id>/live")
@cases_required
def live(case_id):
    """The conversation alone, polled by the open page (htmx, every few seconds): 304 with
    no body when nothing changed since the tag the page holds (`If-None-Match`)."""
    case = _case_or_404(case_id)
    return unless_changed(
        cases.thread_version(case), lambda: _show(case, ReplyForm(), block="live")
    )


def unless_changed(version: str, build):
    """304 when the client's `If-None-Match` names `version`, else `build()` with that ETag.
    Never cached by the browser itself (the page's script sends the tag), so a 304 reaches
    the script and nothing is swapped."""
    etag = f'"{version}"'
    if request.if_none_match.contains(version):
        response = make_response("", 304)
    else:
        response = build()
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")
    return response


def _show(case, form, status=200, block="reply"):
    messages = cases.messages(case)
    return render(
        "cases/show.html",
        block=block,
        version=cases.thread_version(case),
        status=status,
        case=case,
        messages=messages,
        files=cases.files_of(messages),
        form=form,
        action_form=ActionForm(),
        labels=cases.STATUS_LABELS,
    )


@bp.post("/<opaque('case'):case_id>/reply")
@cases_required
def reply(case_id):
    """Add a reply; a resolved case is reopened by it."""
    case = _case_or_404(case_id)
    form = ReplyForm()
    if not form.validate():
        return _show(case, form, 422)
    cases.reply_as_customer(case, current_user, form.body.data, files=form.files.prepared)
    flash("Your reply was sent.", "success")
    return redirect_to(url_for("cases.show", case_id=case.id))


@bp.post("/<opaque('case'):case_id>/resolve")
@cases_required
def resolve(case_id):
    """Mark the case resolved (the customer's question is answered)."""
    case = _case_or_404(case_id)
    if ActionForm().validate_on_submit() and case.status in cases.OPEN_STATUSES:
        cases.resolve_as_customer(case, current_user)
        flash("Thank you. The case is marked resolved; reply to reopen it.", "success")
    return redirect_to(url_for("cases.show", case_id=case.id))
