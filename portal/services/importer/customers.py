"""CSV import kind: customers (business accounts), by account number."""

from ...models import Customer
from .base import Kind, customers_by_account, put
from .parsers import parse_email, parse_yes_no


class Customers(Kind):
    name = "customers"
    writes_references = True
    columns = (
        "account_number",
        "name",
        "email",
        "phone",
        "address",
        "allow_self_registration",
        "portal_enabled",
    )
    required = ("account_number", "name")

    def parse(self, cells):
        values = {}
        key = cells.text("account_number", 50, required=True)
        put(values, "name", cells.text("name", 255, required=True))
        put(values, "email", cells.parsed("email", parse_email, ""))
        put(values, "phone", cells.text("phone", 50))
        put(values, "address", cells.text("address", one_line=False))
        put(
            values,
            "allow_self_registration",
            cells.parsed("allow_self_registration", parse_yes_no, False),
        )
        put(values, "portal_enabled", cells.parsed("portal_enabled", parse_yes_no, True))
        return key, values, {}

    def describe(self, key):
        return f"account_number {key}"

    def fetch(self, rows, lock=False):
        return {"existing": customers_by_account(r.key for r in rows)}

    def new_values(self, row, state, now):
        return {"account_number": row.key, **row.values, "created_at": now, "updated_at": now}

    def write(self, rows, state, prepared, now):
        # Customer rows in id order before any is changed: the same order the invoice
        # import locks them in (`Customer.lock_versions`), so the two never deadlock.
        Customer.lock_versions(
            state["existing"][r.key].id for r in rows if r.key in state["existing"]
        )
        return self._upsert(Customer, rows, state, now, stamp=("updated_at",))
