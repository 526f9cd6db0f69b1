"""CSV import kind: the ERP's sales orders, by number."""

from ...db import utcnow
from ...models import Quote, SalesOrder, WebOrder
from .base import (
    ABSENT,
    Kind,
    account_of,
    customer_and_site,
    customers_by_account,
    in_chunks,
    put,
    resolve_customer_and_site,
    sites_by_code,
)
from .parsers import parse_currency, parse_date, parse_order_status


class Orders(Kind):
    """Sales orders as the ERP has them (their lines and shipments are kinds of their own);
    `quote_number` ties an order to the quote the customer accepted; `portal_order` names
    the order the customer placed in the portal (its W- number, from the orders export): the
    ERP's order then becomes that same row, renamed to the ERP's number, so the customer
    sees one order, not two."""

    name = "orders"
    columns = (
        "number",
        "account_number",
        "site_code",
        "order_date",
        "promised_date",
        "customer_po",
        "status",
        "currency",
        "quote_number",
        "portal_order",
    )
    required = ("number", "account_number", "order_date")
    insert_fields = (
        "number",
        "customer",
        "site",
        "quote",
        "status",
        "order_date",
        "promised_date",
        "customer_po",
        "currency",
        "total_cents",
    )

    def parse(self, cells):
        values = {}
        key = cells.text("number", 30, required=True)
        account = cells.text("account_number", 50, required=True)
        put(values, "order_date", cells.parsed("order_date", parse_date, None, required=True))
        put(values, "promised_date", cells.parsed("promised_date", parse_date, None))
        put(values, "customer_po", cells.text("customer_po", 50))
        put(values, "status", cells.parsed("status", parse_order_status, "open"))
        put(values, "currency", cells.parsed("currency", parse_currency, "USD"))
        refs = {
            "account": account,
            "site": cells.text("site_code", 50),
            "quote": cells.text("quote_number", 30),
            "portal": cells.text("portal_order", 30),
        }
        return key, values, refs

    def describe(self, key):
        return f"order {key}"

    def fetch(self, rows, lock=False):
        customers = customers_by_account(r.refs["account"] for r in rows)
        named = {r.refs["quote"] for r in rows if r.refs["quote"]}
        quotes = in_chunks(
            Quote.number, named, Quote.select(Quote.id, Quote.number, Quote.customer)
        )
        orders = in_chunks(SalesOrder.number, (r.key for r in rows), SalesOrder.select())
        existing = {o.number: o for o in orders}
        portal = _portal_orders(rows)
        for row in rows:
            web = portal.get(_portal_ref(row))
            if row.key not in existing and web is not None and web.linked_at is None:
                # The ERP's order of a portal order: update that row (renamed), not a new one.
                existing[row.key] = web.order
        return {
            "customers": customers,
            "sites": sites_by_code(c.id for c in customers.values()),
            "quotes": {q.number: q for q in quotes},
            "existing": existing,
            "portal": portal,
        }

    def check(self, row, state):
        customer, problems = customer_and_site(row, state)
        if customer is None:
            return problems
        account, number = row.refs["account"], row.refs["quote"]
        quote = state["quotes"].get(number) if number else None
        if number and quote is None:
            problems.append(f"unknown quote_number {number}")
        elif quote is not None and quote.customer_id != customer.id:
            problems.append(f"quote {number} is not a quote of account {account}")
        named = _portal_ref(row)
        web = state["portal"].get(named) if named else None
        if named and web is None:
            problems.append(f"unknown portal_order {named}")
        elif web is not None and web.order.customer_id != customer.id:
            problems.append(f"portal order {named} is not an order of account {account}")
        elif web is not None and web.linked_at is not None and web.order.number != row.key:
            problems.append(f"portal order {named} is already linked to {web.order.number}")
        existing = state["existing"].get(row.key)
        # Moving an order would show it to another company.
        if existing is not None and existing.customer_id != customer.id:
            other = account_of(existing.customer_id, state["customers"])
            problems.append(f"order {row.key} is an order of account {other}, not {account}")
        return problems

    def _resolved(self, row, state) -> dict:
        values = dict(row.values)
        resolve_customer_and_site(row, state, values)
        number = row.refs["quote"]
        if number is not ABSENT:
            values["quote"] = state["quotes"][number].id if number else None
        return values

    def write(self, rows, state, prepared, now):
        defaults = {"site": None, "quote": None, "status": "open", "promised_date": None}
        defaults.update(customer_po="", currency="USD", total_cents=0)
        counts = self._upsert_with(
            SalesOrder,
            rows,
            state,
            lambda row: {**self._resolved(row, state), "number": row.key},
            defaults,
        )
        linked = [
            web.id
            for row in rows
            if (web := state["portal"].get(_portal_ref(row))) is not None and web.linked_at is None
        ]
        if linked:
            WebOrder.update(linked_at=utcnow()).where(
                WebOrder.id.in_(linked) & WebOrder.linked_at.is_null()
            ).execute()
        return counts


def _portal_ref(row) -> str:
    """The portal order number a row names, or ''."""
    named = row.refs.get("portal")
    return named if isinstance(named, str) else ""


def _portal_orders(rows) -> dict:
    """{W- number: WebOrder with its order} for the portal orders the rows name."""
    named = {_portal_ref(r) for r in rows} - {""}
    if not named:
        return {}
    found = in_chunks(
        WebOrder.number, named, WebOrder.select(WebOrder, SalesOrder).join(SalesOrder)
    )
    return {web.number: web for web in found}
