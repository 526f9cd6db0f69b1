"""The catalog for logins with the `orders` role: search, a product's page, add to cart."""

from flask import Blueprint, abort, flash, url_for
from flask_login import current_user

from ..auth import customer_required
from ..forms.catalog import AddForm
from ..services import cart, catalog
from ..services.backoffice import paginate
from ..web import page_number, redirect_to, render, search_text

bp = Blueprint("catalog", __name__, url_prefix="/catalog")
orders_required = customer_required("orders", "orders")


@bp.get("/")
@orders_required
def index():
    """Products at the customer's prices; search by item code or description (htmx results)."""
    q = search_text()
    page = paginate(catalog.search(current_user.contact.customer_id, q), page_number())
    return render(
        "catalog/index.html",
        block="results",
        page=page,
        items=catalog.priced(page.rows),
        q=q,
        in_cart=cart.count(current_user),
        add_form=AddForm(formdata=None),
    )


def _product_or_404(item_code):
    found = catalog.product_for(current_user.contact.customer_id, item_code)
    if found is None:
        abort(404)
    return found


# By item code, not the row's sequential id (checklist E3); a code may hold a slash.
@bp.get("/item/<path:item_code>")
@orders_required
def show(item_code):
    """One product: description, unit, the customer's price and what is available."""
    return _show(_product_or_404(item_code), AddForm(formdata=None))


def _show(item, form, status=200):
    return render(
        "catalog/show.html",
        block="add",
        status=status,
        item=item,
        form=form,
        in_cart=cart.count(current_user),
    )


@bp.post("/add/<path:item_code>")
@orders_required
def add(item_code):
    """Put the product in the cart; a quantity over what is available is refused (422)."""
    item = _product_or_404(item_code)
    form = AddForm()
    if form.validate():
        try:
            cart.add(current_user, item.product.id, form.quantity.milli)
        except cart.CartError as exc:
            form.quantity.errors = [exc.message]
        else:
            flash(f"{item.product.item_code} is in your cart.", "success")
            return redirect_to(url_for("catalog.show", item_code=item.product.item_code))
    return _show(item, form, 422)
