"""One search box over the signed-in account: invoices, quotes, orders and cases."""

from flask import Blueprint
from flask_login import current_user

from ..auth import customer_required
from ..services import billing, cases, orders, quotes, search
from ..web import render, search_text

bp = Blueprint("search", __name__, url_prefix="/search")


@bp.get("/")
@customer_required()
def index():
    """The account's invoices, quotes, orders and cases matching `q`, grouped by kind (a
    plain GET form; htmx swaps only the results)."""
    q = search_text()
    return render(
        "search/index.html",
        block="results",
        q=q,
        groups=search.everything(current_user, q) if q else [],
        kinds=search.kinds_for(current_user),
        today=billing.today(),
        quote_labels=quotes.QUOTE_LABELS,
        quote_status=quotes.status_of,
        order_labels=orders.STATUS_LABELS,
        case_labels=cases.STATUS_LABELS,
    )
