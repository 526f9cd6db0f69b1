"""CSV import kind: sites of customers, by (account number, site code)."""

from ...models import Site
from .base import Kind, customers_by_account, put, sites_by_code


class Sites(Kind):
    name = "sites"
    writes_references = True
    columns = ("account_number", "site_code", "name", "address")
    required = ("account_number", "site_code", "name")

    def parse(self, cells):
        values = {}
        account = cells.text("account_number", 50, required=True)
        code = cells.text("site_code", 50, required=True)
        put(values, "name", cells.text("name", 255, required=True))
        put(values, "address", cells.text("address", one_line=False))
        return (account, code), values, {"account": account}

    def describe(self, key):
        return f"site {key[1]} of account {key[0]}"

    def fetch(self, rows, lock=False):
        customers = customers_by_account(r.refs["account"] for r in rows)
        sites = sites_by_code(c.id for c in customers.values())
        by_id = {c.id: c.account_number for c in customers.values()}
        existing = {(by_id[cid], code): site for (cid, code), site in sites.items()}
        return {"customers": customers, "existing": existing}

    def check(self, row, state):
        if row.refs["account"] not in state["customers"]:
            return [f"unknown account_number {row.refs['account']}"]
        return []

    def new_values(self, row, state, now):
        customer = state["customers"][row.refs["account"]]
        return {"customer": customer.id, "site_code": row.key[1], **row.values}

    def write(self, rows, state, prepared, now):
        return self._upsert(Site, rows, state, now)
