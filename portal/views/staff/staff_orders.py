"""Orders in the back office: every customer's orders as the ERP sent them, read-only."""

from flask import Blueprint

from ...models import SalesOrder
from ...services import orders
from ...services.backoffice import paginate
from ...web import choice, page_number, render, search_text
from ._common import get_or_404, guard

bp = Blueprint("staff_orders", __name__, url_prefix="/staff/orders")
guard(bp)


@bp.get("/")
def index():
    """Orders, open ones first by default; search by number, PO, customer or account."""
    status = choice("status", orders.FILTERS, "open")
    q = search_text()
    page = paginate(orders.staff_orders(status, q), page_number())
    return render(
        "staff/orders/index.html",
        block="results",
        page=page,
        current=status,
        filters=orders.FILTERS,
        q=q,
        labels=orders.STATUS_LABELS,
    )


@bp.get("/<int:order_id>")
def show(order_id):
    """One order: its customer, the quote it came from, lines, shipments, progress."""
    return render("staff/orders/show.html", **orders.page_context(get_or_404(SalesOrder, order_id)))
