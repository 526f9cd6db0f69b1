"""CSV import kind: invoices, by number, with their quick-pay codes (hashed before the write
lock)."""

from ...db import locked
from ...models import Customer, Invoice
from ...money import to_decimal
from ...security import hash_code, seal, unseal, verify_code
from .base import (
    ABSENT,
    Kind,
    Row,
    Stored,
    account_of,
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
from .parsers import (
    new_code,
    parse_currency,
    parse_date,
    parse_days,
    parse_money,
    parse_percent_bp,
    parse_quick_pay_code,
)


class Invoices(Kind):
    name = "invoices"
    columns = (
        "number",
        "account_number",
        "site_code",
        "issue_date",
        "due_date",
        "total",
        "amount_paid",
        "currency",
        "quick_pay_code",
        "discount_percent",
        "discount_days",
        "description",
        "customer_po",
    )
    required = ("number", "account_number", "issue_date", "due_date", "total")
    # The order of the INSERT columns.
    insert_fields = (
        "number",
        "customer",
        "site",
        "issue_date",
        "due_date",
        "total_cents",
        "amount_paid_cents",
        "currency",
        "discount_bp",
        "discount_days",
        "description",
        "customer_po",
        "quick_pay_hash",
        "quick_pay_sealed",
        "quick_pay_version",
        "created_at",
        "updated_at",
    )
    unread = ("created_at", "updated_at", "voided_at")
    defaults = {
        "amount_paid_cents": 0,
        "currency": "USD",
        "discount_bp": 0,
        "discount_days": 0,
        "description": "",
        "customer_po": "",
    }

    def parse(self, cells):
        values = {}
        number = cells.text("number", 50, required=True)
        account = cells.text("account_number", 50, required=True)
        site_code = cells.text("site_code", 50)
        issue = cells.parsed("issue_date", parse_date, None, required=True)
        due = cells.parsed("due_date", parse_date, None, required=True)
        total = cells.parsed("total", parse_money, None, required=True)
        paid = cells.parsed("amount_paid", parse_money, 0)
        bp = cells.parsed("discount_percent", parse_percent_bp, 0)
        days = cells.parsed("discount_days", parse_days, 0)
        code = cells.parsed("quick_pay_code", parse_quick_pay_code, "", show=False)
        put(values, "issue_date", issue)
        put(values, "due_date", due)
        put(values, "total_cents", total)
        put(values, "amount_paid_cents", paid)
        put(values, "currency", cells.parsed("currency", parse_currency, "USD"))
        put(values, "discount_bp", bp)
        put(values, "discount_days", days)
        put(values, "description", cells.text("description", one_line=False))
        put(values, "customer_po", cells.text("customer_po", 50))
        if issue and due and due < issue:
            cells.problems.append("due_date is before issue_date")
        if total is not None and paid not in (ABSENT, None) and paid > total:
            cells.problems.append(
                f"amount_paid {to_decimal(paid)} is more than the total {to_decimal(total)}"
            )
        if bp not in (ABSENT, 0) and not cells.cells.get("discount_days"):
            cells.problems.append("discount_days is required when discount_percent is set")
        refs = {"account": account, "site": site_code, "code": code}
        return number, values, refs

    def describe(self, key):
        return f"invoice number {key}"

    selective = True

    def references(self, rows):
        """The customers and sites the rows name, no invoice looked up."""
        customers = customers_by_account(r.refs["account"] for r in rows)
        sites = sites_by_code(c.id for c in customers.values())
        return {"customers": customers, "sites": sites, "existing": {}}

    def fetch(self, rows, lock=False):
        state = self.references(rows)
        # Lock the invoices an update touches, so a payment cannot slip in between the
        # check that the new total covers what is paid and the write.
        # Plain dicts without the timestamps: three times faster than model instances when
        # a re-import compares 100,000 invoices.
        fields = [f for f in Invoice._meta.sorted_fields if f.name not in self.unread]
        query = Invoice.select(*fields).dicts()
        invoices = in_chunks(
            Invoice.number, (r.key for r in rows), locked(query) if lock else query
        )
        state["existing"] = {i["number"]: Stored(i) for i in invoices}
        return state

    def check(self, row, state):
        if row.refs["code"] is None:  # staged, and the key that sealed it changed since
            return ["its quick_pay_code could not be read back after a change of secret key"]
        customer, problems = customer_and_site(row, state)
        if customer is None:
            return problems
        account = row.refs["account"]
        invoice = state["existing"].get(row.key)
        if invoice is None:
            return problems
        if invoice.customer_id != customer.id:
            owner = account_of(invoice.customer_id, state["customers"])
            problems.append(f"invoice {row.key} belongs to account {owner}, not {account}")
        values = self._merged(row, invoice)
        settled = values["amount_paid_cents"] + invoice.discount_taken_cents
        if values["total_cents"] < settled:
            problems.append(
                f"total {to_decimal(values['total_cents'])} is less than the "
                f"{to_decimal(settled)} already paid or discounted on this invoice"
            )
        if values["currency"] != invoice.currency and (
            invoice.amount_paid_cents or invoice.discount_taken_cents
        ):
            problems.append(
                f"currency cannot change from {invoice.currency} once something is paid"
            )
        return problems

    def _merged(self, row, invoice) -> dict:
        """The field values an update would leave on `invoice` (codes aside)."""
        values = {**invoice.__data__, **row.values}
        values["amount_paid_cents"] = max(
            invoice.amount_paid_cents, row.values.get("amount_paid_cents", 0)
        )
        return values

    def _code_to_set(self, row, invoice, prepared: dict) -> str | None:
        """The code a row gives its invoice: a new invoice's, a changed one, or None (keep)."""
        code = row.refs["code"]
        if invoice is None:
            if code:
                return code
            ready = prepared.get(row.key)
            return ready[0] if ready else new_code()
        if code and not self._has_code(invoice, code):
            return code
        return None

    def _has_code(self, invoice, code: str) -> bool:
        current = unseal(invoice.quick_pay_sealed)
        if current is not None:
            return current == code
        return verify_code(invoice.quick_pay_hash, code)  # sealed under an old key

    def prepare(self, rows, state, hash_codes):
        """Generate and hash the quick-pay codes before the write lock is taken."""
        numbers, codes = [], []
        for row in rows:
            code = self._code_to_set(row, state["existing"].get(row.key), {})
            if code is not None:
                numbers.append(row.key)
                codes.append(code)
        hashes, sealed = hash_codes(codes, meanwhile=lambda: [seal(code) for code in codes])
        return {n: (c, h, s) for n, c, h, s in zip(numbers, codes, hashes, sealed, strict=True)}

    def _code_fields(self, row, invoice, prepared) -> dict:
        """The hash and sealed copy of the code this row sets, if it sets one."""
        code = self._code_to_set(row, invoice, prepared)
        if code is None:
            return {}
        ready = prepared.get(row.key)
        if ready is None or ready[0] != code:
            # What the database held changed since `prepare` (a concurrent import).
            ready = (code, hash_code(code), seal(code))
        return {"quick_pay_hash": ready[1], "quick_pay_sealed": ready[2]}

    def _values(self, row, state, prepared):
        """(customer, stored invoice or None, the values the row would write)."""
        values = dict(row.values)
        customer = resolve_customer_and_site(row, state, values)
        invoice = state["existing"].get(row.key)
        values.update(self._code_fields(row, invoice, prepared))
        if invoice is not None:
            values["amount_paid_cents"] = self._merged(row, invoice)["amount_paid_cents"]
        return customer, invoice, values

    def moving(self, rows, state, prepared):
        """The rows that would insert or change an invoice, read without locks: the import
        locks and writes only these, so a payer of an invoice the file repeats unchanged
        never waits for the import."""
        out = []
        for row in rows:
            try:
                _, invoice, values = self._values(row, state, prepared)
            except KeyError:  # its customer or site went since the check: the locked
                out.append(row)  # check that follows reports it
                continue
            if invoice is None or changes_of(invoice, values):
                out.append(row)
        return out

    def to_stage(self, rows, prepared):
        """Rows with their quick-pay codes sealed, as the invoice keeps its own copy, and
        the hashes `prepare` made for them: no code is stored in clear."""
        staged = []
        for row in rows:
            code = row.refs["code"]
            refs = {**row.refs, "code": seal(code) if code else code}
            staged.append([row.line, row.key, row.values, refs])
        ready = {r.key: prepared[r.key][1:] for r in rows if r.key in prepared}
        return {"rows": staged, "prepared": ready}

    def from_stage(self, data):
        rows = []
        for line, key, values, refs in data["rows"]:
            if refs["code"]:
                # None if the key that sealed it is gone (`check` refuses the row then).
                refs["code"] = unseal(refs["code"])
            rows.append(Row(line, key, values, refs))
        prepared = {}
        for key, (hashed, sealed) in data["prepared"].items():
            code = unseal(sealed)
            if code is not None:
                prepared[key] = (code, hashed, sealed)
        return rows, prepared

    def write(self, rows, state, prepared, now):
        new, updates, touched = [], [], set()
        for row in rows:
            customer, invoice, values = self._values(row, state, prepared)
            if invoice is None:
                merged = {
                    **self.defaults,
                    "site": None,
                    **values,
                    "number": row.key,
                    "customer": customer.id,
                    "quick_pay_version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                new.append({f: merged[f] for f in self.insert_fields})
                touched.add(customer.id)
                continue
            changes = changes_of(invoice, values)
            if not changes:
                continue
            if "quick_pay_hash" in changes:
                # Signed pay links carry the version: the old code's links die with it.
                changes["quick_pay_version"] = invoice.quick_pay_version + 1
            changes["updated_at"] = now
            updates.append((invoice.id, changes))
            # Only customers whose billing changes: an unchanged row moves no version.
            touched.update((customer.id, invoice.customer_id))
        update_rows(Invoice, updates)
        insert_rows(Invoice, new)
        if "touched" in state:  # the import locks them once, after its last chunk
            state["touched"].update(touched)
        else:
            Customer.lock_versions(touched)
        return len(new), len(updates)
