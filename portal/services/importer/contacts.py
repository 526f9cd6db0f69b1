"""CSV import kind: contacts of customers, by email (lower-cased); new ones may be invited
at once."""

from ...models import Contact, Customer
from .base import (
    Kind,
    changes_of,
    customer_and_site,
    customers_by_account,
    in_chunks,
    insert_rows,
    put,
    resolve_customer_and_site,
    sites_by_code,
    update_rows,
)
from .parsers import parse_email


class Contacts(Kind):
    name = "contacts"
    columns = ("account_number", "email", "first_name", "last_name", "phone", "site_code")
    required = ("account_number", "email")

    def parse(self, cells):
        values = {}
        account = cells.text("account_number", 50, required=True)
        email = cells.parsed("email", parse_email, "", required=True)
        put(values, "first_name", cells.text("first_name", 100))
        put(values, "last_name", cells.text("last_name", 100))
        put(values, "phone", cells.text("phone", 50))
        site_code = cells.text("site_code", 50)
        return email, values, {"account": account, "site": site_code}

    def describe(self, key):
        return f"email {key}"

    def fetch(self, rows, lock=False):
        customers = customers_by_account(r.refs["account"] for r in rows)
        # Select the whole customer: a partial one would blank the contact's customer_id.
        query = Contact.select(Contact, Customer).join(Customer)
        contacts = in_chunks(Contact.email, (r.key for r in rows), query)
        return {
            "customers": customers,
            "sites": sites_by_code(c.id for c in customers.values()),
            "existing": {c.email: c for c in contacts},
        }

    def check(self, row, state):
        customer, problems = customer_and_site(row, state)
        if customer is None:
            return problems
        account = row.refs["account"]
        existing = state["existing"].get(row.key)
        # Moving a contact would hand its portal login another company's data.
        if existing is not None and existing.customer_id != customer.id:
            other = existing.customer.account_number
            problems.append(f"{row.key} is a contact of account {other}, not {account}")
        return problems

    def _resolved(self, row, state) -> dict:
        values = dict(row.values)
        resolve_customer_and_site(row, state, values)
        return values

    def write(self, rows, state, prepared, now):
        new, updates = [], []
        fields = ("customer", "site", "email", "first_name", "last_name", "phone", "created_at")
        for row in rows:
            values = self._resolved(row, state)
            obj = state["existing"].get(row.key)
            if obj is None:
                defaults = {"site": None, "first_name": "", "last_name": "", "phone": ""}
                merged = {**defaults, **values, "email": row.key, "created_at": now}
                new.append({f: merged[f] for f in fields})
            elif changes := changes_of(obj, values):
                updates.append((obj.id, changes))
        update_rows(Contact, updates)
        insert_rows(Contact, new)
        # The account class may say "invite every new contact": the back office's rule
        # (`access.on_contact_created`) holds for imported contacts too, in this transaction.
        auto = {c.id for c in state["customers"].values() if c.auto_invite and c.portal_enabled}
        emails = [values["email"] for values in new if values["customer"] in auto]
        if emails:
            from .. import access

            query = Contact.select(Contact, Customer).join(Customer)
            access.invite_new_contacts(in_chunks(Contact.email, emails, query))
        return len(new), len(updates)
