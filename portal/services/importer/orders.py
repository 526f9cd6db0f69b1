"""CSV import kind: the ERP's sales orders, by number."""

from ...models import Quote, SalesOrder
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
    `quote_number` ties an order to the quote the customer accepted."""

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
        return {
            "customers": customers,
            "sites": sites_by_code(c.id for c in customers.values()),
            "quotes": {q.number: q for q in quotes},
            "existing": {o.number: o for o in orders},
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
        return self._upsert_with(
            SalesOrder,
            rows,
            state,
            lambda row: {**self._resolved(row, state), "number": row.key},
            defaults,
        )
