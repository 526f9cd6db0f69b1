"""Orders in the back office: every customer's orders; portal orders are reviewed here
(accept, or reject with a reason) and accepted ones exported as CSV for the ERP, once each."""

from flask import Blueprint, abort, flash, make_response, request, url_for

from ...forms import ActionForm
from ...models import SalesOrder
from ...services import orders
from ...services.backoffice import paginate
from ...web import choice, page_number, redirect_to, render, search_text
from ._common import get_or_404, guard, me

bp = Blueprint("staff_orders", __name__, url_prefix="/staff/orders")
guard(bp)


@bp.get("/")
def index():
    """Orders, open ones first by default; search by number, PO, customer or account."""
    status = choice("status", orders.STAFF_FILTERS, "open")
    q = search_text()
    page = paginate(orders.staff_orders(status, q), page_number())
    return render(
        "staff/orders/index.html",
        block="results",
        page=page,
        current=status,
        filters=orders.STAFF_FILTERS,
        q=q,
        labels=orders.STATUS_LABELS,
        exportable=orders.exportable_count(),
        action_form=ActionForm(),
    )


def _show(order, status=200, reason_error=None):
    return render(
        "staff/orders/show.html",
        status=status,
        action_form=ActionForm(),
        reason_error=reason_error,
        **orders.page_context(order),
    )


@bp.get("/<int:order_id>")
def show(order_id):
    """One order: its customer, the quote it came from, lines, shipments, progress, and for
    a portal order what the customer asked and the review."""
    return _show(get_or_404(SalesOrder, order_id))


@bp.get("/<int:order_id>/packing-slips")
def packing_slips(order_id):
    """The order's packing slips, as the customer prints them."""
    order = get_or_404(SalesOrder, order_id)
    return render(
        "orders/packing_slips.html",
        back=url_for("staff_orders.show", order_id=order.id),
        **orders.page_context(order),
    )


@bp.post("/<int:order_id>/review")
def review(order_id):
    """Accept a submitted portal order, or reject it with a reason the customer reads."""
    order = get_or_404(SalesOrder, order_id)
    if not ActionForm().validate():
        abort(400)
    decision = request.form.get("decision")
    if decision not in ("accept", "reject"):
        abort(400)
    try:
        orders.review(order, me(), decision == "accept", request.form.get("reason", ""))
    except orders.OrderError as exc:
        if exc.field == "reason":
            return _show(order, 422, exc.message)
        flash(exc.message, "warning")
    else:
        verb = "accepted" if decision == "accept" else "rejected"
        flash(f"Order {order.number} is {verb}.", "success")
    return redirect_to(url_for("staff_orders.show", order_id=order.id))


@bp.post("/export")
def export():
    """Download the accepted portal orders not yet exported, and mark them exported."""
    if not ActionForm().validate():
        abort(400)
    result = orders.export_accepted(me())
    if result is None:
        flash("There are no accepted orders to export.", "info")
        return redirect_to(url_for("staff_orders.index", status="all"))
    batch, text = result
    response = make_response(text)
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="portal-orders-{batch}.csv"'
    return response
