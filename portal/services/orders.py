"""Sales orders as the ERP knows them: customers follow status, lines shipped and shipments.

Read-only in the portal (the ERP's CSV export brings them in: `flask import orders`,
`order_lines`, `shipments`). Statuses: `open`, `partially_shipped`, `shipped`, `closed`,
`cancelled`; the list's "open" filter means not yet fully shipped.
"""

from datetime import timedelta
from urllib.parse import quote as urlquote

from ..models import Contact, Customer, PortalUser, Quote, SalesOrder, SalesOrderLine, Shipment
from ..web import absolute_url
from . import outbox, quotes, settings

STATUS_LABELS = {
    "open": "Open",
    "partially_shipped": "Partly shipped",
    "shipped": "Shipped",
    "closed": "Completed",
    "cancelled": "Cancelled",
}
FILTERS = {"open": "Open", "shipped": "Shipped", "all": "All"}
_FILTER_STATUSES = {"open": ("open", "partially_shipped"), "shipped": ("shipped", "closed")}


def _narrowed(query, status: str, q: str, *searched):
    """Newest first, by status filter, and `q` in the order number, PO or `searched`."""
    query = query.order_by(SalesOrder.order_date.desc(), SalesOrder.id.desc())
    if status in _FILTER_STATUSES:
        query = query.where(SalesOrder.status.in_(_FILTER_STATUSES[status]))
    q = (q or "").strip()
    if q:
        like = f"%{q}%"
        found = SalesOrder.number.ilike(like) | SalesOrder.customer_po.ilike(like)
        for field in searched:
            found |= field.ilike(like)
        query = query.where(found)
    return query


def for_user(user, status: str = "open", q: str = ""):
    """The orders the user may see, newest first, by status filter and number or PO search."""
    return _narrowed(SalesOrder.for_user(user), status, q)


def staff_orders(status: str = "open", q: str = ""):
    """Every customer's orders for the back office, newest first, by status filter and
    order number, PO, customer name or account number."""
    query = SalesOrder.select(SalesOrder, Customer).join(Customer)
    return _narrowed(query, status, q, Customer.name, Customer.account_number)


def order_for(user, order_id) -> SalesOrder | None:
    """One order the user may see (another company's or site's answers None, hence 404)."""
    try:
        order_id = int(order_id)
    except (TypeError, ValueError):
        return None
    return for_user(user, "all").where(SalesOrder.id == order_id).first()


def lines(order: SalesOrder) -> list[SalesOrderLine]:
    """The order's lines in order, with their products."""
    return SalesOrderLine.of(order)


def shipments(order: SalesOrder) -> list[Shipment]:
    """The order's shipments, latest first."""
    return list(order.shipments.order_by(Shipment.shipped_at.desc(), Shipment.id.desc()))


def page_context(order: SalesOrder) -> dict:
    """What an order page shows besides the order: its lines, shipments and progress."""
    order_lines = lines(order)
    return {
        "order": order,
        "lines": order_lines,
        "shipments": shipments(order),
        "shipped_percent": shipped_percent(order_lines),
        "labels": STATUS_LABELS,
        "tracking_url": tracking_url,
    }


def source_quote(user, order: SalesOrder) -> Quote | None:
    """The quote the order came from, when this user may open it (quotes role, in scope)."""
    if not order.quote_id or not user.has_role("quotes"):
        return None
    return quotes.quote_for(user, order.quote_id)


def shipped_percent(order_lines) -> int:
    """How much of the order has shipped, by value (units differ between lines), 0-100;
    by quantity when the lines carry no prices."""
    ordered = sum(line.quantity_milli * line.unit_price_cents for line in order_lines)
    shipped = sum(
        min(line.shipped_milli, line.quantity_milli) * line.unit_price_cents for line in order_lines
    )
    if ordered <= 0:
        ordered = sum(line.quantity_milli for line in order_lines)
        shipped = sum(min(line.shipped_milli, line.quantity_milli) for line in order_lines)
    return shipped * 100 // ordered if ordered > 0 else 0


TRACKING_URLS = {
    "ups": "https://www.ups.com/track?tracknum={}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "dhl": "https://www.dhl.com/en/express/tracking.html?AWB={}",
}


def tracking_url(shipment: Shipment) -> str | None:
    """The carrier's public tracking page for a shipment, for the carriers we know."""
    template = TRACKING_URLS.get((shipment.carrier or "").strip().lower())
    number = "".join((shipment.tracking_number or "").split())
    if not template or not number:
        return None
    return template.format(urlquote(number, safe=""))


# A shipment imported later than this after it left is history, not news: no email.
ANNOUNCE_WITHIN = timedelta(days=7)


def announce_shipments(shipped: list[tuple[SalesOrder, dict]], now) -> int:
    """Queue the `shipment_sent` email for shipments just recorded (inside the caller's
    transaction): to whoever accepted the order's quote, else the company's address. Only
    shipments still on their way and shipped within a week are announced, so importing an
    order history sends nothing; so is an order of a customer without the portal or with
    the orders module off. Returns how many were queued."""
    if not settings.get("module_orders"):
        return 0
    news = [
        (order, values)
        for order, values in shipped
        if values["delivered_at"] is None and values["shipped_at"] >= now - ANNOUNCE_WITHIN
    ]
    if not news:
        return 0
    # Two queries for all of them: the customers, and who accepted each order's quote.
    customers = {
        c.id: c for c in Customer.select().where(Customer.id.in_({o.customer_id for o, _ in news}))
    }
    deciders = _quote_deciders({o.quote_id for o, _ in news if o.quote_id})
    queued = 0
    for order, values in news:
        customer = customers[order.customer_id]
        if not customer.portal_enabled:
            continue
        user = deciders.get(order.quote_id)
        to = user.contact.email if user is not None else customer.email
        if not to:
            continue
        shipment = Shipment(**values)
        outbox.queue_template(
            "shipment_sent",
            to,
            name=user.contact.first_name if user is not None else customer.name,
            order_number=order.number,
            customer_po=order.customer_po,
            shipment_number=values["number"],
            carrier=values["carrier"],
            tracking_number=values["tracking_number"],
            tracking_link=tracking_url(shipment) or "",
            link=absolute_url("orders.show", order_id=order.id),
        )
        queued += 1
    return queued


def _quote_deciders(quote_ids) -> dict:
    """{quote id: the active login that accepted it, with its contact} for these quotes."""
    if not quote_ids:
        return {}
    rows = (
        Quote.select(Quote.id, PortalUser, Contact)
        .join(PortalUser, on=(Quote.decided_by == PortalUser.id))
        .join(Contact)
        .where(Quote.id.in_(quote_ids) & (PortalUser.status == "active"))
    )
    return {quote.id: quote.decided_by for quote in rows}
