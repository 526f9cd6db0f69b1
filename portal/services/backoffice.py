"""Back-office work: customers, sites, contacts and invoices with audit, the payments export,
outbox retries and staff logins.

Each function is one unit of work in one `write_txn`; a `Problem` names the form field a
person has to fix, so views can show it next to that field with a 422.
"""

import io
import operator
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce

from peewee import JOIN, Value, fn
from peewee import Case as SqlCase

from .. import spreadsheet
from ..db import db, in_values, is_sqlite, locked, utcnow, write_txn
from ..models import (
    AuditLog,
    Contact,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentApplication,
    PaymentAttemptItem,
    PortalUser,
    Quote,
    SalesOrder,
    Site,
    StaffUser,
)
from ..money import to_decimal
from ..security import hash_code, hash_secret, new_quick_pay_code, new_stamp, normalize_code, seal
from ..validators import CONTROL_MESSAGE, has_control_characters
from . import audit, figures, statement_mail
from .auth import end_all_sessions, normalize_email, set_password

PAGE_SIZE = 25
COUNT_CAP = 10_000  # rows a list counts before it says "10,000+"
# Matches a search counts before it says "1,000+": forty pages is more than anyone reads
# when looking for something, and counting further read up to 10,000 matching rows per
# search at a million invoices (a name matching a hundred customers: 225 ms instead of 30).
SEARCH_COUNT_CAP = 1_000


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class Problem(ValueError):
    """Something a person must fix; `field` is the form field it belongs to (or None)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Page:
    """One page of a list: the rows, and enough to draw 'previous / next'."""

    rows: list
    number: int
    total: int
    size: int = PAGE_SIZE
    capped: bool = False  # more rows than `total` match (see `paginate`)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return 0 if not self.total else (self.number - 1) * self.size + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.number * self.size)


def paginate(
    query, number: int, size: int = PAGE_SIZE, cap: int | None = None, total: int | None = None
) -> Page:
    """Cut a query into a page. The count runs without the ORDER BY and stops at `cap`: past
    it the pager says "10,000+" and offers the first `cap` rows, so a list costs the same at
    10k and at 1M rows (nobody pages through more; they narrow the search). `total`: the
    count when the caller already made it (up to `cap + 1`)."""
    cap = cap or COUNT_CAP
    if total is None:
        total = query.order_by().limit(cap + 1).count()
    capped = total > cap
    total = min(total, cap)
    number = max(1, min(number, max(1, -(-total // size))))
    return Page(list(query.paginate(number, size)), number, total, size, capped)


def _needle(text: str) -> str:
    """What a staff search looks for inside a column with `.contains()`, which escapes `%`,
    `_` and `\\` (a search for "50%" finds "50%", not "500"): never a raw LIKE pattern."""
    return text.strip()


DIGIT_RUN = re.compile(r"\d{3,}")


def _contains(field, needle: str):
    """`field` contains `needle`, also asked of the needle's longest run of three or more
    digits when it has one: the same rows, since a column that contains the needle contains
    its digits. On PostgreSQL the trigram index then starts from the digits, which tell one
    number from another, instead of from what every number shares ("INV-", "R-0"): at a
    million invoices "INV-0004242" read 925 index pages, "0004242" and it together 47."""
    found = field.contains(needle)
    runs = DIGIT_RUN.findall(needle)
    digits = max(runs, key=len) if runs else needle
    return found if digits == needle else field.contains(digits) & found


def _changes(obj, values: dict) -> dict:
    """{field: [old, new]} for the values that differ from obj; sets the new ones on obj."""
    changed = {}
    for key, new in values.items():
        old = getattr(obj, key)
        if old != new:
            changed[key] = [old, new]
            setattr(obj, key, new)
    return changed


# --- customers --------------------------------------------------------------------------


def search_customers(q: str = ""):
    """Customers matching `q` (account, name, email or a contact's name or email), with their
    site, contact and login counts and open balance computed in the same query."""
    n_sites = Site.select(fn.COUNT(Site.id)).where(Site.customer == Customer.id)
    n_contacts = Contact.select(fn.COUNT(Contact.id)).where(Contact.customer == Customer.id)
    n_logins = (
        PortalUser.select(fn.COUNT(PortalUser.id))
        .join(Contact)
        .where((Contact.customer == Customer.id) & (PortalUser.status == "active"))
    )
    balance = Invoice.select(fn.COALESCE(fn.SUM(Invoice.balance_expr()), 0)).where(
        (Invoice.customer == Customer.id) & (Invoice.status == "open")
    )
    query = Customer.select(
        Customer,
        n_sites.alias("n_sites"),
        n_contacts.alias("n_contacts"),
        n_logins.alias("n_logins"),
        balance.alias("open_balance"),
    ).order_by(Customer.name, Customer.id)
    if q and q.strip():
        pattern = _needle(q)
        people = Contact.select(Contact.customer).where(
            Contact.email.contains(pattern)
            | Contact.first_name.contains(pattern)
            | Contact.last_name.contains(pattern)
        )
        query = query.where(
            Customer.account_number.contains(pattern)
            | Customer.name.contains(pattern)
            | Customer.email.contains(pattern)
            | Customer.id.in_(people)
        )
    return query


# Fields of customers, sites and contacts that reach email headers and subjects (a name in
# "To:", a company name in a subject): no control characters (B9; portal/validators.py).
PLAIN_FIELDS = (
    "account_number",
    "name",
    "email",
    "site_code",
    "first_name",
    "last_name",
    "phone",
)


def _check_plain(values: dict) -> None:
    """Refuse a control character in any single-line field, next to that field."""
    for name in PLAIN_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and has_control_characters(value):
            raise Problem(name, CONTROL_MESSAGE)


def _check_account_number(number: str, exclude_id=None) -> None:
    query = Customer.select().where(Customer.account_number == number)
    if exclude_id:
        query = query.where(Customer.id != exclude_id)
    if query.exists():
        raise Problem("account_number", "Another customer already has this account number.")


def create_customer(values: dict, by) -> Customer:
    """Create a customer account; audited."""
    _check_plain(values)
    with write_txn():
        _check_account_number(values["account_number"])
        customer = Customer.create(**values)
        audit.record("customer.created", customer, actor=by, **values)
    return customer


def update_customer(customer: Customer, values: dict, by) -> dict:
    """Change a customer's details or account-class options; audited old -> new."""
    _check_plain(values)
    with write_txn():
        _check_account_number(values["account_number"], exclude_id=customer.id)
        changed = _changes(customer, values)
        if changed:
            customer.updated_at = utcnow()
            customer.save()
            audit.record("customer.updated", customer, actor=by, changes=changed)
    return changed


# --- sites ------------------------------------------------------------------------------


def _check_site_code(customer_id: int, code: str, exclude_id=None) -> None:
    query = Site.select().where((Site.customer == customer_id) & (Site.site_code == code))
    if exclude_id:
        query = query.where(Site.id != exclude_id)
    if query.exists():
        raise Problem("site_code", "This customer already has a site with this code.")


def create_site(customer: Customer, values: dict, by) -> Site:
    """Add a site to a customer; audited."""
    _check_plain(values)
    with write_txn():
        _check_site_code(customer.id, values["site_code"])
        site = Site.create(customer=customer, **values)
        audit.record("site.created", site, actor=by, customer=customer.account_number, **values)
    return site


def update_site(site: Site, values: dict, by) -> dict:
    """Change a site; audited old -> new."""
    _check_plain(values)
    with write_txn():
        _check_site_code(site.customer_id, values["site_code"], exclude_id=site.id)
        changed = _changes(site, values)
        if changed:
            site.save()
            audit.record("site.updated", site, actor=by, changes=changed)
    return changed


# --- contacts ---------------------------------------------------------------------------


def _contact_values(customer_id: int, values: dict) -> dict:
    values = dict(values)
    values["email"] = normalize_email(values.get("email")) or None
    site_id = values.pop("site_id", None) or None
    if site_id and not Site.belongs_to(site_id, customer_id):
        raise Problem("site_id", "Choose one of this customer's sites.")
    values["site"] = site_id
    return values


def _check_email(email: str | None, exclude_id=None) -> None:
    if not email:
        return
    query = Contact.select().where(Contact.email == email)
    if exclude_id:
        query = query.where(Contact.id != exclude_id)
    if query.exists():
        raise Problem("email", "Another contact already uses this email.")


def create_contact(customer: Customer, values: dict, by) -> Contact:
    """Add a contact to a customer; audited (the caller then calls `access.contact_created`)."""
    _check_plain(values)
    with write_txn():
        values = _contact_values(customer.id, values)
        _check_email(values["email"])
        contact = Contact.create(customer=customer, **values)
        audit.record(
            "contact.created",
            contact,
            actor=by,
            customer=customer.account_number,
            email=contact.email,
            name=contact.full_name,
        )
    return contact


def update_contact(contact: Contact, values: dict, by) -> dict:
    """Change a contact (its email is also its portal login); audited old -> new."""
    _check_plain(values)
    with write_txn():
        values = _contact_values(contact.customer_id, values)
        _check_email(values["email"], exclude_id=contact.id)
        values["site_id"] = values.pop("site")
        changed = _changes(contact, values)
        if changed:
            contact.save()
            audit.record("contact.updated", contact, actor=by, changes=changed)
    return changed


def portal_user_of(contact: Contact) -> PortalUser | None:
    """The contact's portal login, if it has one."""
    return PortalUser.get_or_none(PortalUser.contact == contact.id)


# --- invoices ---------------------------------------------------------------------------

INVOICE_STATES = ("open", "overdue", "paid", "void")

LABEL_SEPARATOR = " · "


def customer_label(customer) -> str:
    """How a staff form names a chosen customer: `ACME-01 · Acme Tools`."""
    return f"{customer.account_number}{LABEL_SEPARATOR}{customer.name}"


def _account_part(text: str) -> str:
    """What is typed in a customer box up to a picked label's separator, spaces tidied."""
    return " ".join((text or "").split(LABEL_SEPARATOR.strip(), 1)[0].split())


def customer_suggestions(text: str, limit: int = 12) -> list:
    """Customers a staff form's customer box suggests for `text`: account numbers starting
    with it first, then names containing it, alphabetically."""
    text = _account_part(text)
    if not text:
        return []
    starts = fn.LOWER(Customer.account_number).startswith(text.lower())
    first = SqlCase(None, [(starts, 0)], 1)
    return list(
        Customer.select(Customer.id, Customer.account_number, Customer.name)
        .where(starts | Customer.name.contains(_needle(text)))
        .order_by(first, Customer.name, Customer.id)
        .limit(limit)
    )


def find_customer(text: str):
    """The one customer a staff form's customer box names — an account number, a picked
    suggestion (`ACME-01 · Acme Tools`) or a name only one customer has or contains — as
    (customer, ""), or (None, what to tell the user)."""
    text = " ".join((text or "").split())
    if not text:
        return None, "Enter the customer's account number or name."
    account = _account_part(text).lower()
    found = Customer.get_or_none(fn.LOWER(Customer.account_number) == account)
    if found is not None:
        return found, ""
    exact = list(Customer.select().where(fn.LOWER(Customer.name) == text.lower()).limit(2))
    if len(exact) == 1:
        return exact[0], ""
    named = list(
        Customer.select()
        .where(Customer.name.contains(_needle(text)))
        .order_by(Customer.name, Customer.id)
        .limit(6)
    )
    if len(named) == 1:
        return named[0], ""
    if not named:
        return None, "No customer has this account number or name."
    shown = "; ".join(customer_label(c) for c in named[:5])
    more = "; …" if len(named) > 5 else ""
    return None, f"Several customers match ({shown}{more}): type the account number."


def customer_overview(customer: Customer) -> dict:
    """A customer's page: sites, contacts, open invoices counted and summed in the database
    (an account may hold thousands), and the latest invoices, quotes and orders."""
    totals = (
        Invoice.unpaid(
            Invoice.select(
                fn.COUNT(Invoice.id).alias("n"),
                fn.COALESCE(fn.SUM(Invoice.balance_expr()), 0).alias("balance"),
            ).where(Invoice.customer == customer.id)
        )
        .dicts()
        .get()
    )
    return {
        "customer": customer,
        "pending": figures.pending_total(
            Invoice.select(Invoice.id).where(Invoice.customer == customer.id)
        ),
        "credit": figures.credit_available(customer.id),
        "sites": list(customer.sites.order_by(Site.site_code)),
        "contacts": list(contacts_of(customer)),
        "open_count": totals["n"],
        "balance": int(totals["balance"]),
        "recent": list(
            customer.invoices.order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(5)
        ),
        "quotes": list(customer.quotes.order_by(Quote.created_at.desc(), Quote.id.desc()).limit(3)),
        "orders": list(
            customer.orders.order_by(SalesOrder.order_date.desc(), SalesOrder.id.desc()).limit(3)
        ),
    }


def invoice_page(q: str, state: str, today, number: int) -> Page:
    """The staff invoice list's page `number`: `search_invoices`, counted once."""
    return _searched_page(*_search_invoices(q, state, today, number), q, number)


def _searched_page(query, total, q: str, number: int) -> Page:
    """Page `number` of a staff list: a search's count capped at SEARCH_COUNT_CAP, pages of
    PAGE_SIZE as `_matching` cuts them."""
    cap = SEARCH_COUNT_CAP if (q or "").strip() else None
    return paginate(query, number, PAGE_SIZE, cap=cap, total=total)


def _matching_customers(pattern: str) -> list[int]:
    """Ids of the customers whose name or account number contains `pattern`: a search finds
    them first (a small table) and then their rows through the customer index, instead of
    trying "name contains" against the customer of every invoice or payment."""
    return [
        c.id
        for c in Customer.select(Customer.id).where(
            Customer.name.contains(pattern) | Customer.account_number.contains(pattern)
        )
    ]


def _hits(model, branches: list, key) -> list[tuple]:
    """(id, `key`, the branch's place) of each row of `model` that matches each of
    `branches`, at most SEARCH_COUNT_CAP + 1 of a branch: a branch with fewer is whole.

    Each branch is its own SELECT (a UNION ALL), so the database plans each "contains" on
    its own (its trigram index) and stops each at the cap. Asked as one OR, PostgreSQL costs
    a "contains" as nearly free and chose to read every row (12 ms for one receipt number at
    10,000 invoices, 25 ms when nothing matches), or built the bitmap of every match to
    count the first 1,001. The capped branches' distinct ids number more than the cap
    exactly when the matches do, so the count they give is the same."""
    cap = SEARCH_COUNT_CAP + 1
    capped = []
    for n, branch in enumerate(branches):
        first = model.select(model.id, key).where(branch).limit(cap).alias(f"branch{n}")
        column = getattr(first.c, key.column_name)
        capped.append(model.select(first.c.id, column, Value(n)).from_(first))
    # The database's own values (no model conversion: 1,001 of them cost 1.5 ms more
    # through `.tuples()`); sorted as the database sorts them, SQLite's text included.
    return db.execute(reduce(operator.add, capped)).fetchall()


def _firsts(model, branches: list, order: tuple, k: int):
    """Ids of the first `k` rows of each branch in `order`, together: the first `k` rows
    that match any branch are among them (a row's place in its own branch is no later than
    its place among all the matches). Each branch reads its own index in order and stops:
    one customer's newest invoices from the customer index, a word every invoice has from
    the newest-first one, instead of trying each branch's "contains" on every row of the
    newest-first scan until a page is found (10 ms for a customer holding 1% of a million)."""
    firsts = []
    for n, branch in enumerate(branches):
        first = model.select(model.id).where(branch).order_by(*order).limit(k).alias(f"first{n}")
        firsts.append(model.select(first.c.id).from_(first))
    return reduce(operator.or_, firsts)


def _matching(query, model, branches: list, keys: tuple, number: int | None):
    """`query` (newest first by `keys`, each descending) narrowed to the rows matching any
    of `branches`, and their count up to SEARCH_COUNT_CAP + 1. `number`: the one page
    that will be read from it, when nothing else narrows it; then the query holds that
    page's rows and those before it, not every match."""
    if is_sqlite():
        # No trigram index: every "contains" is a scan, so the parts go as one OR (one scan
        # that stops at the cap), not one scan each (51 ms instead of 3 at 100k invoices
        # for a name with 10,000 of them).
        branches = [reduce(operator.or_, branches)]
    rows = _hits(model, branches, keys[0])
    per_branch = Counter(n for _, _, n in rows)
    dense = {n for n, count in per_branch.items() if count > SEARCH_COUNT_CAP}
    found = min(len({row_id for row_id, _, _ in rows}), SEARCH_COUNT_CAP + 1)

    def newest(n_rows: int) -> list:
        """The first `n_rows` ids, newest first, of the whole branches' rows in hand."""
        whole = {row_id: key for row_id, key, n in rows if n not in dense}
        return sorted(whole, key=lambda row_id: (whole[row_id], row_id), reverse=True)[:n_rows]

    if number:
        pages = max(1, -(-min(found, SEARCH_COUNT_CAP) // PAGE_SIZE))
        shown = min(max(1, number), pages) * PAGE_SIZE  # the rows up to the page `paginate` cuts
        # The rows of the whole branches are in hand with their sort key: sorted here, and
        # only the page's rows fetched (771 matches at a million invoices fetched 771 rows
        # and their customers to show 25). A branch past the cap reads its first rows.
        ids = newest(shown)
        if not dense:
            return query.where(model.id.in_(in_values(ids) if ids else [])), found
        # One IN of one union (the whole branches' ids a part of it): PostgreSQL joins it
        # to the rows, where an OR of two INs filtered the newest-first scan (5 ms).
        parts = [b for n, b in enumerate(branches) if n in dense]
        parts += [model.id.in_(in_values(ids))] if ids else []
        order = tuple(key.desc() for key in keys)
        return query.where(model.id.in_(_firsts(model, parts, order, shown))), found
    matched = [b for n, b in enumerate(branches) if n in per_branch]
    if not matched:
        return query.where(model.id.in_([])), found
    if found <= SEARCH_COUNT_CAP:
        # Few matches: take them first (index lookups), then sort them. Filtering the
        # newest-first scan instead would read most of the table when the matches are few
        # and old (one customer's invoices, or no match at all).
        union = reduce(operator.or_, (model.select(model.id).where(b) for b in matched))
        union = union.cte("hits", materialized=True)
        return query.join(union, on=(model.id == union.c.id)).with_cte(union), found
    # Many, and every one of them asked for: the newest-first scan finds a page at once.
    return query.where(reduce(operator.or_, matched)), found


def search_invoices(q: str = "", state: str = "", today=None):
    """Invoices matching `q` (number, description, PO, customer name or account) in `state`:
    newest first, the open and overdue ones oldest due first."""
    return _search_invoices(q, state, today)[0]


def _search_invoices(q: str, state: str, today, number: int | None = None):
    """(the query, and the count of its rows up to SEARCH_COUNT_CAP + 1 when the search
    already made it: a search with no state filter). `number`: the one page that will be
    read from the query (`invoice_page`); without it the query holds every match."""
    total = None
    newest = (Invoice.issue_date.desc(), Invoice.id.desc())
    # LEFT, though every invoice has its customer: a count of this query (the pager's, of
    # a search in a state) then leaves the customer out (PostgreSQL and SQLite drop an
    # unused join to a unique key), one index read and no join.
    query = Invoice.select(Invoice, Customer).join(Customer, JOIN.LEFT_OUTER).order_by(*newest)
    if q and q.strip():
        pattern = _needle(q)
        # The matching customers first (a small table), then their invoices by the customer
        # index: "name contains" never has to be tried against every invoice's customer, and
        # the number's, description's and PO's "contains" use their trigram indexes on
        # PostgreSQL (migrations 0029, 0041).
        customers = _matching_customers(pattern)
        branches = [
            _contains(Invoice.number, pattern),
            _contains(Invoice.description, pattern),
            _contains(Invoice.customer_po, pattern),
        ]
        if customers:
            branches.append(Invoice.customer.in_(in_values(customers)))
        keys = (Invoice.issue_date, Invoice.id)
        query, found = _matching(query, Invoice, branches, keys, None if state else number)
        if not state:
            total = found  # the pager's count, made once
    query = _in_state(query, state, today)
    if total is None and not (q and q.strip()):
        # A list: counted on the invoices alone. Beside even an unused join, PostgreSQL
        # counted the overdue list from the wide unpaid index (2.7 ms at a million
        # invoices) instead of the narrow due-date one (1 ms). SQLite, the other way
        # round, reads its covering unpaid index (0008) customer by customer through the
        # join: 0.9 ms at 100k invoices, 2.3 without it.
        counted = Invoice.select(Invoice.id)
        counted = counted.join(Customer) if is_sqlite() else counted
        total = _in_state(counted, state, today).order_by().limit(COUNT_CAP + 1).count()
    return query, total


def _in_state(query, state: str, today):
    """An invoice query narrowed to the list `state`, in that list's order."""
    balance = Invoice.balance_expr()
    if state in ("open", "overdue"):
        # Oldest due first, what collecting works through, read in order from the unpaid
        # invoices' due-date index (0045): newest issued first, the overdue list walked the
        # recent invoices, none of them overdue yet (900 ms at a million invoices).
        query = query.where((Invoice.status == "open") & (balance > 0)).order_by(
            Invoice.due_date, Invoice.id
        )
    if state == "overdue":
        query = query.where(Invoice.due_date < today)
    if state == "paid":
        query = query.where((Invoice.status == "open") & (balance <= 0))
    elif state == "void":
        query = query.where(Invoice.status == "void")
    return query


def _line_rows(lines: list[dict]) -> list[dict]:
    rows = []
    for position, line in enumerate(lines, start=1):
        # Thousandths times cents, rounded half up to the cent (all positive here).
        amount = (line["quantity_milli"] * line["unit_price_cents"] + 500) // 1000
        rows.append(dict(line, position=position, amount_cents=amount))
    return rows


def _check_invoice(values: dict, exclude_id=None) -> None:
    query = Invoice.select().where(Invoice.number == values["number"])
    if exclude_id:
        query = query.where(Invoice.id != exclude_id)
    if query.exists():
        raise Problem("number", "Another invoice already has this number.")
    if not Customer.select().where(Customer.id == values["customer_id"]).exists():
        raise Problem("customer", "Choose a customer.")
    site_id = values.get("site_id")
    if site_id and not Site.belongs_to(site_id, values["customer_id"]):
        raise Problem("site_id", "Choose one of this customer's sites.")


def _new_code_fields() -> tuple[str, dict]:
    code = new_quick_pay_code()
    return code, {"quick_pay_hash": hash_code(normalize_code(code)), "quick_pay_sealed": seal(code)}


def create_invoice(values: dict, lines: list[dict], by) -> tuple[Invoice, str]:
    """Create an invoice (with lines) and its quick-pay code; returns both. Audited."""
    rows = _line_rows(lines)
    values = dict(values)
    if rows:
        values["total_cents"] = sum(r["amount_cents"] for r in rows)
    code, code_fields = _new_code_fields()
    with write_txn():
        _check_invoice(values)
        invoice = Invoice.create(
            number=values["number"],
            customer=values["customer_id"],
            site=values.get("site_id"),
            issue_date=values["issue_date"],
            due_date=values["due_date"],
            currency=values["currency"],
            total_cents=values["total_cents"],
            discount_bp=values["discount_bp"],
            discount_days=values["discount_days"],
            description=values["description"],
            **code_fields,
        )
        for row in rows:
            InvoiceLine.create(invoice=invoice, **row)
        audit.record(
            "invoice.created",
            invoice,
            actor=by,
            number=invoice.number,
            total_cents=invoice.total_cents,
            lines=len(rows),
        )
        # The new-invoice email, in the same transaction (issue 18; imports send none).
        statement_mail.invoice_issued(invoice)
    return invoice, code


def _in_payment(invoice_id: int) -> bool:
    live = (
        PaymentApplication.select()
        .join(Payment)
        .where(
            (PaymentApplication.invoice == invoice_id)
            & (Payment.status.in_(("pending", "applied")))
        )
    )
    attempts = PaymentAttemptItem.select().where(
        (PaymentAttemptItem.invoice == invoice_id) & (PaymentAttemptItem.is_open == True)  # noqa: E712
    )
    # An offline payment on its way has no applications yet: its attempt names the invoice.
    pending = figures.pending_by_invoice([invoice_id])
    return live.exists() or attempts.exists() or bool(pending)


def update_invoice(invoice: Invoice, values: dict, lines: list[dict], by) -> dict:
    """Edit an open invoice and replace its lines; the total never drops below what is paid."""
    rows = _line_rows(lines)
    values = dict(values)
    if rows:
        values["total_cents"] = sum(r["amount_cents"] for r in rows)
    with write_txn():
        current = locked(Invoice.select().where(Invoice.id == invoice.id)).get()
        if current.status != "open":
            raise Problem(None, "A void invoice cannot be changed.")
        _check_invoice(values, exclude_id=current.id)
        settled = current.amount_paid_cents + current.discount_taken_cents
        if values["total_cents"] < settled:
            raise Problem(
                "total",
                f"The total cannot be less than what has been paid and discounted "
                f"({to_decimal(settled)}).",
            )
        if values["customer_id"] != current.customer_id and (settled or _in_payment(current.id)):
            raise Problem("customer_id", "Payments were made on this invoice: keep its customer.")
        if values["currency"] != current.currency and settled:
            raise Problem("currency", "Payments were made on this invoice: keep its currency.")
        fields = {
            "number": values["number"],
            "customer_id": values["customer_id"],
            "site_id": values.get("site_id"),
            "issue_date": values["issue_date"],
            "due_date": values["due_date"],
            "currency": values["currency"],
            "total_cents": values["total_cents"],
            "discount_bp": values["discount_bp"],
            "discount_days": values["discount_days"],
            "description": values["description"],
        }
        changed = _changes(current, fields)
        old_lines = [
            (line.description, line.quantity_milli, line.unit_price_cents)
            for line in current.lines.order_by(InvoiceLine.position)
        ]
        new_lines = [(r["description"], r["quantity_milli"], r["unit_price_cents"]) for r in rows]
        if old_lines != new_lines or any(r["item_code"] for r in rows):
            InvoiceLine.delete().where(InvoiceLine.invoice == current.id).execute()
            for row in rows:
                InvoiceLine.create(invoice=current, **row)
            if old_lines != new_lines:
                changed["lines"] = [len(old_lines), len(new_lines)]
        if changed:
            moved_from = current.customer_id
            current.updated_at = utcnow()
            current.save()
            # Moved to another customer: both versions are raised at commit, in id order.
            Customer.lock_versions({moved_from, values["customer_id"]})
            audit.record("invoice.updated", current, actor=by, changes=changed)
    return changed


def void_invoice(invoice: Invoice, reason: str, by) -> None:
    """Void an open invoice nobody is paying; its pay links die with the quick-pay version."""
    with write_txn():
        current = locked(Invoice.select().where(Invoice.id == invoice.id)).get()
        if current.status == "void":
            raise Problem(None, "This invoice is already void.")
        if _in_payment(current.id):
            raise Problem(
                None, "Payments are applied to or in progress on this invoice: void those first."
            )
        Invoice.update(
            status="void",
            voided_at=utcnow(),
            updated_at=utcnow(),
            quick_pay_version=Invoice.quick_pay_version + 1,
        ).where(Invoice.id == current.id).execute()
        audit.record("invoice.voided", current, actor=by, number=current.number, reason=reason)


def regenerate_code(invoice: Invoice, by) -> str:
    """Give an invoice a new quick-pay code; the old code and every pay link stop working."""
    code, code_fields = _new_code_fields()
    with write_txn():
        current = locked(Invoice.select().where(Invoice.id == invoice.id)).get()
        if current.status == "void":
            raise Problem(None, "A void invoice has no quick-pay code to replace.")
        Invoice.update(
            quick_pay_version=Invoice.quick_pay_version + 1, updated_at=utcnow(), **code_fields
        ).where(Invoice.id == invoice.id).execute()
        # Never the code itself: the audit log is read by every admin.
        audit.record("invoice.code_regenerated", invoice, actor=by, number=invoice.number)
    return code


# --- payments ---------------------------------------------------------------------------


def payment_page(number: int, **filters) -> Page:
    """The staff payment list's page `number`: `search_payments` with `filters`, a search
    counted once and to SEARCH_COUNT_CAP ("1,000+"), as the invoice list's."""
    return _searched_page(*_search_payments(number=number, **filters), filters.get("q"), number)


def search_payments(q="", status="", flagged=False, posted="", start=None, end=None):
    """Payments matching the filters, newest first, with their customer."""
    return _search_payments(q, status, flagged, posted, start, end)[0]


def _search_payments(q="", status="", flagged=False, posted="", start=None, end=None, number=None):
    """(the query, and the count of its rows up to SEARCH_COUNT_CAP + 1 when the search
    already made it: `q` and no other filter). `number`: as `_search_invoices`."""
    total = None
    query = (
        Payment.select(Payment, Customer)
        .join(Customer, JOIN.LEFT_OUTER)  # as the invoice search: the count leaves it out
        .order_by(Payment.received_at.desc(), Payment.id.desc())
    )
    alone = not (status or flagged or posted in ("yes", "no") or start or end)
    if q and q.strip():
        pattern = _needle(q)
        # Trigram indexes on PostgreSQL (0043); the customers first, as the invoice search.
        branches = [
            _contains(Payment.receipt_number, pattern),
            _contains(Payment.provider_reference, pattern),
            _contains(Payment.payer_email, pattern),
            _contains(Payment.payer_name, pattern),
        ]
        customers = _matching_customers(pattern)
        if customers:
            branches.append(Payment.customer.in_(in_values(customers)))
        keys = (Payment.received_at, Payment.id)
        query, found = _matching(query, Payment, branches, keys, number if alone else None)
        if alone:
            total = found
    if status:
        query = query.where(Payment.status == status)
    if flagged:
        query = query.where(Payment.flagged == True)  # noqa: E712
    if posted == "yes":
        query = query.where(Payment.posted_at.is_null(False))
    elif posted == "no":
        query = query.where(Payment.posted_at.is_null())
    if start:
        query = query.where(Payment.received_at >= _day_start(start))
    if end:
        query = query.where(Payment.received_at < _day_start(end) + timedelta(days=1))
    return query, total


EXPORT_COLUMNS = [
    "receipt_number",
    "received_date",
    "account_number",
    "customer",
    "method",
    "reference",
    "currency",
    "payment_total",
    "line_type",
    "invoice_number",
    "amount",
    "discount",
    "payer_name",
    "payer_email",
]


def _export_rows(payments: list[Payment]) -> list[list[str]]:
    ids = [p.id for p in payments]
    applications = {}
    for app in (
        PaymentApplication.select(PaymentApplication, Invoice)
        .join(Invoice)
        .where(PaymentApplication.payment.in_(ids))
        .order_by(PaymentApplication.id)
    ):
        applications.setdefault(app.payment_id, []).append(app)
    rows = []
    for p in payments:
        head = [
            p.receipt_number,
            p.received_at.date().isoformat(),
            p.customer.account_number,
            p.customer.name,
            p.provider,
            p.provider_reference,
            p.currency,
            to_decimal(p.amount_cents),
        ]
        tail = [p.payer_name, p.payer_email]
        for app in applications.get(p.id, []):
            rows.append(
                head
                + [
                    "invoice",
                    app.invoice.number,
                    to_decimal(app.amount_cents),
                    to_decimal(app.discount_cents),
                ]
                + tail
            )
        if p.unapplied_cents:
            rows.append(head + ["credit", "", to_decimal(p.unapplied_cents), "0.00"] + tail)
    return rows


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = spreadsheet.writer(buffer, lineterminator="\r\n")  # text neutralised (G6)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _exportable():
    return (
        Payment.select(Payment, Customer)
        .join(Customer)
        .where((Payment.status == "applied") & Payment.posted_at.is_null())
        .order_by(Payment.received_at, Payment.id)
    )


def unposted_count() -> int:
    """How many applied payments the next export would hold."""
    return _exportable().count()


def export_payments(by) -> tuple[datetime, str] | None:
    """Export applied payments not yet posted as CSV and mark them posted, in one transaction.

    Returns (the export's timestamp, the CSV text), or None when there is nothing new.
    """
    with write_txn():
        payments = list(locked(_exportable()))
        if not payments:
            return None
        # Whole seconds, so the timestamp in a re-download link matches exactly.
        stamp = utcnow().replace(microsecond=0)
        Payment.update(posted_at=stamp).where(
            Payment.id.in_([p.id for p in payments]) & Payment.posted_at.is_null()
        ).execute()
        text = _csv(_export_rows(payments))
        audit.record(
            "payments.exported",
            None,
            actor=by,
            count=len(payments),
            posted_at=stamp.isoformat(),
            total_cents=sum(p.amount_cents for p in payments),
        )
    return stamp, text


def past_exports(limit: int = 12) -> list[dict]:
    """The most recent exports: when, how many payments, how much."""
    rows = (
        Payment.select(
            Payment.posted_at,
            fn.COUNT(Payment.id).alias("n"),
            fn.SUM(Payment.amount_cents).alias("total"),
        )
        .where(Payment.posted_at.is_null(False))
        .group_by(Payment.posted_at)
        .order_by(Payment.posted_at.desc())
        .limit(limit)
        .dicts()
    )
    return [{"posted_at": r["posted_at"], "n": r["n"], "total": int(r["total"] or 0)} for r in rows]


def export_again(stamp: datetime) -> str | None:
    """The CSV of a past export, rebuilt from the payments it marked posted."""
    payments = list(
        Payment.select(Payment, Customer)
        .join(Customer)
        .where(Payment.posted_at == stamp)
        .order_by(Payment.received_at, Payment.id)
    )
    return _csv(_export_rows(payments)) if payments else None


# --- outbox and audit -------------------------------------------------------------------


def search_audit(action="", actor="", object_type="", object_id="", start=None, end=None):
    """Audit entries matching the filters, newest first."""
    query = AuditLog.select().order_by(AuditLog.at.desc(), AuditLog.id.desc())
    if action:
        query = query.where(AuditLog.action.startswith(action.strip()))
    if actor:
        query = query.where(AuditLog.actor_label.contains(_needle(actor)))
    if object_type:
        query = query.where(fn.LOWER(AuditLog.object_type) == object_type.strip().lower())
    if object_id:
        query = query.where(AuditLog.object_id == object_id.strip())
    if start:
        query = query.where(AuditLog.at >= _day_start(start))
    if end:
        query = query.where(AuditLog.at < _day_start(end) + timedelta(days=1))
    return query


def audit_actions() -> list[str]:
    """The distinct actions in the log, for the filter's suggestions."""
    rows = AuditLog.select(AuditLog.action).distinct().order_by(AuditLog.action)
    return [r.action for r in rows]


# --- staff ------------------------------------------------------------------------------


def _active_admins(exclude_id=None) -> int:
    query = StaffUser.select().where((StaffUser.role == "admin") & StaffUser.active)
    if exclude_id:
        query = query.where(StaffUser.id != exclude_id)
    return query.count()


def create_staff_user(email: str, name: str, role: str, password: str, by) -> StaffUser:
    """Create a back-office login with a first password; audited."""
    email = normalize_email(email)
    password_hash = hash_secret(password)  # argon2 work outside the write lock
    with write_txn():
        if StaffUser.select().where(StaffUser.email == email).exists():
            raise Problem("email", "This email already has a back-office login.")
        staff = StaffUser.create(
            email=email,
            name=name.strip(),
            role=role,
            password_hash=password_hash,
            auth_stamp=new_stamp(),
        )
        audit.record("staff.created", staff, actor=by, email=email, role=role)
    return staff


def update_staff_user(staff: StaffUser, name: str, role: str, by) -> dict:
    """Change a staff member's name or role; the last active admin stays an admin."""
    with write_txn():
        if (
            staff.role == "admin"
            and role != "admin"
            and staff.active
            and not _active_admins(exclude_id=staff.id)
        ):
            raise Problem("role", "Keep at least one active admin.")
        changed = _changes(staff, {"name": name.strip(), "role": role})
        if changed:
            staff.save()
            audit.record("staff.updated", staff, actor=by, changes=changed)
    return changed


def set_staff_active(staff: StaffUser, active: bool, by) -> None:
    """Deactivate (ending every session) or reactivate a staff login."""
    with write_txn():
        if not active:
            if staff.id == by.id:
                raise Problem(None, "You cannot deactivate your own login.")
            if staff.role == "admin" and not _active_admins(exclude_id=staff.id):
                raise Problem(None, "Keep at least one active admin.")
        StaffUser.update(active=active).where(StaffUser.id == staff.id).execute()
        staff.active = active
        if not active:
            end_all_sessions(staff)
        audit.record("staff.activated" if active else "staff.deactivated", staff, actor=by)


def reset_staff_password(staff: StaffUser, password: str, by) -> None:
    """Set a new password for a staff member; their sessions end."""
    with write_txn():
        set_password(staff, password)
        audit.record("staff.password_set", staff, actor=by)


def staff_list():
    """Every staff login, admins first."""
    return StaffUser.select().order_by(StaffUser.active.desc(), StaffUser.role, StaffUser.email)


def contacts_of(customer: Customer):
    """A customer's contacts with their site and portal login, in one query."""
    return (
        Contact.select(Contact, Site, PortalUser)
        .join(Site, JOIN.LEFT_OUTER, on=(Contact.site == Site.id))
        .switch(Contact)
        .join(PortalUser, JOIN.LEFT_OUTER, on=(PortalUser.contact == Contact.id), attr="login")
        .where(Contact.customer == customer.id)
        .order_by(Contact.last_name, Contact.first_name, Contact.id)
    )
