"""Sales orders: customers follow status, lines shipped and shipments.

Most come from the ERP's CSV export (`flask import orders`, `order_lines`, `shipments`).
An order placed in the portal (services/cart.py) starts `submitted` with a `WebOrder` beside
it; the office accepts or rejects it (with a reason) and exports accepted ones as CSV for the
ERP, each once; when the ERP's order comes back through the import naming the portal's
number (`portal_order`), the import renames that same row to the ERP's number, so the
customer sees one order. Statuses: `submitted`, `accepted`, `rejected` (portal orders not in
the ERP yet), then the ERP's `open`, `partially_shipped`, `shipped`, `closed`, `cancelled`;
the list's "open" filter means not yet fully shipped (submitted and accepted included).
"""

import io
import secrets
from datetime import timedelta
from urllib.parse import quote as urlquote

from peewee import JOIN

from ..db import locked, utcnow, write_txn
from ..filters import quantity
from ..models import (
    Contact,
    Customer,
    PortalUser,
    Product,
    Quote,
    SalesOrder,
    SalesOrderLine,
    Shipment,
    Site,
    WebOrder,
)
from ..money import to_decimal
from ..spreadsheet import writer as csv_writer
from ..web import absolute_url
from . import audit, email_templates, quotes, settings

STATUS_LABELS = {
    "submitted": "Submitted",
    "accepted": "Accepted",
    "rejected": "Not accepted",
    "open": "Open",
    "partially_shipped": "Partly shipped",
    "shipped": "Shipped",
    "closed": "Completed",
    "cancelled": "Cancelled",
}
FILTERS = {"open": "Open", "shipped": "Shipped", "all": "All"}
STAFF_FILTERS = {"submitted": "To review", **FILTERS}
_FILTER_STATUSES = {
    "submitted": ("submitted",),
    "open": ("submitted", "accepted", "open", "partially_shipped"),
    "shipped": ("shipped", "closed"),
}


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
        "web": web_order_of(order),
    }


def web_order_of(order: SalesOrder) -> WebOrder | None:
    """The portal's side of an order placed here (None for an order made in the ERP)."""
    return (
        WebOrder.select(WebOrder, PortalUser, Contact)
        .join(PortalUser, JOIN.LEFT_OUTER, on=(WebOrder.placed_by == PortalUser.id))
        .join(Contact, JOIN.LEFT_OUTER)
        .where(WebOrder.order == order.id)
        .first()
    )


class OrderError(Exception):
    """A review the order's state does not allow (shown to the person)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def review(order: SalesOrder, staff, accept: bool, reason: str = "") -> None:
    """The office accepts a submitted portal order, or rejects it saying why; the UPDATE
    re-checks the state, so two clicks or two colleagues cannot decide it twice. The login
    that placed the order is emailed the decision in the same transaction (once)."""
    reason = (reason or "").strip()
    if not accept and not reason:
        raise OrderError("Say why the order is not accepted; the customer reads it.", "reason")
    status = "accepted" if accept else "rejected"
    with write_txn():
        changed = (
            SalesOrder.update(status=status)
            .where((SalesOrder.id == order.id) & (SalesOrder.status == "submitted"))
            .execute()
        )
        if changed != 1:
            raise OrderError("This order was already reviewed.")
        WebOrder.update(reviewed_by=staff.id, reviewed_at=utcnow(), reject_reason=reason).where(
            WebOrder.order == order.id
        ).execute()
        audit.record(f"order.{status}", order, actor=staff, reason=reason or None)
        _email_review(order, status, reason)
    order.status = status


def _email_review(order: SalesOrder, status: str, reason: str) -> None:
    """`order_accepted` or `order_rejected` to the active login that placed the order."""
    web = web_order_of(order)
    user = web.placed_by if web is not None and web.placed_by_id else None
    if user is None or user.status != "active" or not user.contact.email:
        return
    email_templates.queue(
        f"order_{status}",
        user.contact.email,
        name=user.contact.first_name,
        order_number=order.number,
        customer_po=order.customer_po,
        reason=reason,
        link=absolute_url("orders.show", order_id=order.id),
    )


def _exportable():
    return (
        WebOrder.select(WebOrder)
        .join(SalesOrder)
        .where((SalesOrder.status == "accepted") & WebOrder.exported_at.is_null())
        .order_by(WebOrder.placed_at, WebOrder.id)
    )


def exportable_count() -> int:
    """How many accepted portal orders the next export would hold."""
    return _exportable().count()


EXPORT_COLUMNS = (
    "portal_order",
    "account_number",
    "site_code",
    "customer_po",
    "order_date",
    "requested_date",
    "line",
    "item_code",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "currency",
    "placed_by",
    "notes",
)


def export_accepted(staff) -> tuple[str, str] | None:
    """The accepted portal orders not yet exported, as CSV for the ERP (one row per line),
    marked exported in the same transaction: each order is exported once, even when two
    exports run at once (the rows are claimed by an UPDATE that re-checks `exported_at`,
    then read back by the claim's batch key). None when there is nothing new."""
    with write_txn():
        waiting = [w.id for w in locked(_exportable())]
        if not waiting:
            return None
        batch = secrets.token_hex(8)
        claimed = (
            WebOrder.update(exported_at=utcnow(), export_batch=batch)
            .where(WebOrder.id.in_(waiting) & WebOrder.exported_at.is_null())
            .execute()
        )
        if not claimed:
            return None
        text = _export_csv(batch)
        audit.record("orders.exported", None, actor=staff, count=claimed, batch=batch)
    return batch, text


def _export_csv(batch: str) -> str:
    rows = (
        SalesOrderLine.select(SalesOrderLine, SalesOrder, WebOrder, Customer, Site, Product)
        .join(SalesOrder)
        .join(WebOrder, on=(WebOrder.order == SalesOrder.id), attr="web_order")
        .switch(SalesOrder)
        .join(Customer)
        .switch(SalesOrder)
        .join(Site, JOIN.LEFT_OUTER)
        .switch(SalesOrderLine)
        .join(Product, JOIN.LEFT_OUTER)
        .where(WebOrder.export_batch == batch)
        .order_by(WebOrder.placed_at, WebOrder.id, SalesOrderLine.position)
    )
    placers = {
        w.id: w.placed_by.contact.email if w.placed_by_id else ""
        for w in WebOrder.select(WebOrder, PortalUser, Contact)
        .join(PortalUser, JOIN.LEFT_OUTER, on=(WebOrder.placed_by == PortalUser.id))
        .join(Contact, JOIN.LEFT_OUTER)
        .where(WebOrder.export_batch == batch)
    }
    out = io.StringIO()
    writer = csv_writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for line in rows:
        order = line.order
        web = order.web_order
        writer.writerow(
            (
                web.number,
                order.customer.account_number,
                order.site.site_code if order.site_id else "",
                order.customer_po,
                order.order_date.isoformat(),
                web.requested_date.isoformat() if web.requested_date else "",
                line.position,
                line.product.item_code if line.product_id else "",
                line.description,
                quantity(line.quantity_milli),
                to_decimal(line.unit_price_cents),
                to_decimal(line.amount_cents),
                order.currency,
                placers.get(web.id, ""),
                web.notes,
            )
        )
    return out.getvalue()


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
    transaction): to whoever accepted the order's quote, else whoever placed it in the
    portal, else the company's address; never to a contact that turned shipment emails off
    (`notices`, topic `order_shipped`), and with the one-click unsubscribe. Only shipments
    still on their way and shipped within a week are announced, so importing an order
    history sends nothing; so is an order of a customer without the portal or with the
    orders module off. Returns how many were queued."""
    if not settings.get("module_orders"):
        return 0
    news = [
        (order, values)
        for order, values in shipped
        if values["delivered_at"] is None and values["shipped_at"] >= now - ANNOUNCE_WITHIN
    ]
    if not news:
        return 0
    # Three queries for all of them: the customers, who accepted each order's quote, and
    # who placed each portal order.
    customers = {
        c.id: c for c in Customer.select().where(Customer.id.in_({o.customer_id for o, _ in news}))
    }
    deciders = _quote_deciders({o.quote_id for o, _ in news if o.quote_id})
    placers = _web_placers({o.id for o, _ in news})
    queued = 0
    for order, values in news:
        customer = customers[order.customer_id]
        if not customer.portal_enabled:
            continue
        user = deciders.get(order.quote_id) or placers.get(order.id)
        mail = quotes.notice_mail(user, customer, "order_shipped")
        if mail is None:
            continue
        to, name, headers = mail
        shipment = Shipment(**values)
        email_templates.queue(
            "shipment_sent",
            to,
            headers=headers,
            name=name,
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


def _web_placers(order_ids) -> dict:
    """{order id: the active login that placed it in the portal, with its contact}."""
    if not order_ids:
        return {}
    rows = (
        WebOrder.select(WebOrder.order, PortalUser, Contact)
        .join(PortalUser, on=(WebOrder.placed_by == PortalUser.id))
        .join(Contact)
        .where(WebOrder.order.in_(list(order_ids)) & (PortalUser.status == "active"))
    )
    return {web.order_id: web.placed_by for web in rows}


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
