"""The cart: quantities recomputed on the server as they are typed, and the checkout."""

from flask import Blueprint, flash, request, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms import ActionForm
from ..forms.catalog import CheckoutForm
from ..money import QuantityError, parse_quantity
from ..services import cart
from ..web import redirect_to, render, wants_fragment

bp = Blueprint("cart", __name__, url_prefix="/cart")
orders_required = customer_required("orders", "orders")


def _page(form=None, errors=None, status=200, block="cart"):
    sites = list(cart.ship_to_sites(current_user))
    form = form or CheckoutForm(formdata=None, sites=sites)
    if len(sites) == 1 and not form.site_id.data:
        form.site_id.data = str(sites[0].id)
    return render(
        "cart/index.html",
        block=block,
        status=status,
        cart=cart.view(current_user, errors),
        # What was typed into a refused quantity stays in its box (it is being typed).
        typed={pid: request.form.get(f"qty-{pid}", "") for pid in errors or {}},
        form=form,
        action_form=ActionForm(),
    )


@bp.get("/")
@orders_required
def index():
    """The cart at today's prices, and the checkout form."""
    return _page()


def _posted_quantities() -> tuple[dict[int, int], dict[int, str]]:
    """{product id: thousandths} from the posted `qty-<product id>` fields, and the ones that
    are no quantity at all (blank means 0, i.e. remove, only when "Remove" is not used)."""
    quantities, errors = {}, {}
    for name, value in request.form.items():
        if not name.startswith("qty-"):
            continue
        try:
            product_id = int(name[4:])
        except ValueError:
            continue
        try:
            quantities[product_id] = parse_quantity(value, zero=True)
        except QuantityError as exc:
            errors[product_id] = str(exc)
    return quantities, errors


@bp.post("/update")
@orders_required
def update():
    """Store typed quantities (0 removes a line) and answer the recomputed cart; htmx posts
    this as the customer types, the "Update totals" button without JavaScript."""
    if not ActionForm().validate():
        return _page(status=400)
    quantities, errors = _posted_quantities()
    errors.update(cart.set_quantities(current_user, quantities))
    if errors:
        return _page(errors=errors, status=422)
    return _page() if wants_fragment() else redirect_to(url_for("cart.index"))


@bp.post("/remove")
@orders_required
def remove():
    """Take a product (the posted `product`) out of the user's own cart."""
    if ActionForm().validate():
        cart.remove(current_user, request.form.get("product", type=int) or 0)
    return redirect_to(url_for("cart.index"))


@bp.post("/checkout")
@orders_required
def checkout():
    """Place the order: ship-to within the login's scope, PO, requested date, notes."""
    form = CheckoutForm(sites=list(cart.ship_to_sites(current_user)))
    if form.validate():
        try:
            order = cart.checkout(
                current_user,
                site_id=form.site_id.data,
                customer_po=form.customer_po.data,
                requested_date=form.requested_date.data,
                notes=form.notes.data,
            )
        except cart.CartError as exc:
            if exc.order is not None:
                # The same cart was just ordered (a double click, another tab).
                flash(f"This cart was already ordered as {exc.order.number}.", "info")
                return redirect_to(url_for("orders.show", order_id=exc.order.id))
            target = getattr(form, exc.field or "", None)
            if target is not None and exc.field != "lines":
                target.errors = [exc.message]
            else:
                form.form_errors.append(exc.message)
        else:
            flash(f"Thank you — order {order.number} is placed. We will confirm it.", "success")
            return redirect_to(url_for("orders.show", order_id=order.id))
    return _page(form, status=422, block=None)
