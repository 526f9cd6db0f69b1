"""One search over the signed-in account: its invoices, quotes, orders and cases.

Each kind is searched through the query its own list shows (`billing.filtered`,
`quotes.quotes_for`, `orders.for_user`, `cases.for_user`), so a login finds exactly what its
lists would show it: its company, its sites, and only the kinds its roles and the enabled
modules allow. Each kind returns its newest few matches; the list pages hold the rest.
"""

from dataclasses import dataclass, field

from peewee import SQL, fn

from ..models import (
    INVOICE_ROW_FIELDS,
    Case,
    InvoiceRow,
    QuoteLine,
    SalesOrder,
    SalesOrderLine,
)
from ..models import Quote as QuoteModel
from . import billing, cases, orders, quotes, settings

LIMIT = 10


@dataclass
class Group:
    """The matches of one kind: the first `LIMIT` of them and whether there are more."""

    kind: str
    label: str
    items: list = field(default_factory=list)
    more: bool = False


def kinds_for(user) -> list[str]:
    """The kinds this login may search: the roles it has, in modules that are on."""
    values = settings.load()
    return [
        kind
        for kind in ("invoices", "quotes", "orders", "cases")
        if user.has_role(kind) and values[f"module_{kind}"]
    ]


def everything(user, q: str) -> list[Group]:
    """The matches of `q` in each kind the login may see, newest first (one query a kind)."""
    searches = {
        "invoices": ("Invoices", _invoices),
        "quotes": ("Quotes", _quotes),
        "orders": ("Orders", _orders),
        "cases": ("Support cases", _cases),
    }
    groups = []
    for kind in kinds_for(user):
        label, search = searches[kind]
        rows = list(search(user, q).limit(LIMIT + 1))
        groups.append(Group(kind, label, rows[:LIMIT], len(rows) > LIMIT))
    return groups


def _invoices(user, q: str):
    """The invoice list's own search (number, description, PO, lines) over all statuses."""
    params = billing.ListParams(status="all", q=q)
    query = billing.filtered(user, params, billing.today(), *INVOICE_ROW_FIELDS)
    return billing.sort_by(query, "-issued").objects(InvoiceRow)


def _in_lines(line_model, owner_field, owner_id, q: str):
    """True when a line of the row has `q` in its description."""
    return fn.EXISTS(
        line_model.select(SQL("1")).where(
            (owner_field == owner_id) & line_model.description.contains(q)
        )
    )


def _quotes(user, q: str):
    """Quotes as the Quotes list shows them, by number, PO or a line's description."""
    return quotes.quotes_for(user, "all").where(
        QuoteModel.number.contains(q)
        | QuoteModel.customer_po.contains(q)
        | _in_lines(QuoteLine, QuoteLine.quote, QuoteModel.id, q)
    )


def _orders(user, q: str):
    """Orders as the Orders list shows them, by number, PO or a line's description."""
    return orders.for_user(user, "all").where(
        SalesOrder.number.contains(q)
        | SalesOrder.customer_po.contains(q)
        | _in_lines(SalesOrderLine, SalesOrderLine.order, SalesOrder.id, q)
    )


def _cases(user, q: str):
    """Cases as the Support list shows them, by number or subject."""
    return cases.for_user(user, "all").where(Case.number.contains(q) | Case.subject.contains(q))
