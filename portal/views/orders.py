"""Orders of the signed-in customer: list with status filter and search, one order's detail."""

from flask import Blueprint, abort, flash, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..services import cart, orders
from ..services.backoffice import paginate
from ..web import choice, page_number, redirect_to, render, search_text

bp = Blueprint("orders", __name__, url_prefix="/orders")
orders_required = customer_required("orders", "orders")


@bp.get("/")
@orders_required
def index():
    """The user's orders, open ones by default; search by order number or PO (htmx results)."""
    status = choice("status", orders.FILTERS, "open")
    q = search_text()
    page = paginate(orders.for_user(current_user, status, q), page_number())
    return render(
        "orders/index.html",
        block="results",
        page=page,
        current=status,
        filters=orders.FILTERS,
        q=q,
        labels=orders.STATUS_LABELS,
    )


@bp.get("/<opaque('order'):order_id>")
@orders_required
def show(order_id):
    """One order: lines with ordered and shipped quantities, shipments, promised date."""
    order = orders.order_for(current_user, order_id)
    if order is None:
        abort(404)
    return render(
        "orders/show.html",
        quote=orders.source_quote(current_user, order),
        action_form=ActionForm(),
        **orders.page_context(order),
    )


@bp.get("/<opaque('order'):order_id>/packing-slips")
@orders_required
def packing_slips(order_id):
    """A printable packing slip per shipment of the order (from the shipments import)."""
    order = orders.order_for(current_user, order_id)
    if order is None:
        abort(404)
    return render(
        "orders/packing_slips.html",
        back=url_for("orders.show", order_id=order.id),
        **orders.page_context(order),
    )


def reorder_from(lines, what: str):
    """Fill the cart with `lines` at today's prices and go there, saying what stayed out."""
    skipped = cart.reorder(current_user, lines)
    flash(
        f"Your cart now holds the items of {what} at today's prices; changed prices are marked.",
        "success",
    )
    for note in skipped:
        flash(note, "warning")
    return redirect_to(url_for("cart.index"))


@bp.post("/<opaque('order'):order_id>/reorder")
@orders_required
def reorder(order_id):
    """A new cart with this order's catalog lines at today's prices (the cart is replaced)."""
    order = orders.order_for(current_user, order_id)
    if order is None:
        abort(404)
    if not ActionForm().validate():
        abort(400)
    return reorder_from(orders.lines(order), f"order {order.number}")
