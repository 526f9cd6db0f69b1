"""The signed-in customer's invoices: summaries, aging, the filtered list, detail and paying.

Every query starts from `Invoice.for_user(user)` (company and site scope), so another
company's invoice is simply not found. Aggregates are single SQL queries whatever the
number of invoices, which keeps each page at a fixed number of queries (checked by tests).
"""

import io
import math
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from urllib.parse import urlencode

from flask import current_app
from peewee import SQL, Case, fn

from .. import money, spreadsheet
from ..db import Slot, prepared
from ..models import (
    INVOICE_ROW_FIELDS,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceRow,
    Payment,
    PaymentApplication,
    PlainRow,
    site_slots,
)
from ..models import Case as SupportCase
from . import figures, payments

PER_PAGE = 25
STATUSES = ("open", "overdue", "paid", "all")
# Sort keys a request may ask for, mapped to columns; anything else falls back to the default.
SORTS = {
    "due": Invoice.due_date,
    "issued": Invoice.issue_date,
    "number": Invoice.number,
    "total": Invoice.total_cents,
    "balance": Invoice.due_expr(),
}
DEFAULT_SORT = {"open": "due", "overdue": "due", "paid": "-issued", "all": "-issued"}
BUCKETS = (
    ("current", "Current"),
    ("d1_30", "1–30 days"),
    ("d31_60", "31–60 days"),
    ("d61_90", "61–90 days"),
    ("d90", "Over 90 days"),
)


def today() -> date:
    """The business date (UTC), the same one payments use for discounts."""
    return payments.today()


@prepared
def _aging(sites):
    """Count and balance of the scope's unpaid invoices per aging bucket (0 = current,
    1 = 1–30 days overdue … 4 = over 90), one row per bucket that has any.

    One CASE per invoice, evaluated through the partial index of unpaid invoices (0008):
    a dozen SUM(CASE …) columns cost several times as much on a large account.
    """
    due = Invoice.due_date
    on, d30, d60, d90 = (Slot(name, due) for name in ("on", "d30", "d60", "d90"))
    bucket = Case(None, [(due >= on, 0), (due >= d30, 1), (due >= d60, 2), (due >= d90, 3)], 4)
    return (
        Invoice.unpaid(
            Invoice.scoped(
                sites, bucket.alias("bucket"), fn.COUNT(Invoice.id), fn.SUM(Invoice.balance_expr())
            )
        )
        .group_by(SQL("1"))
        .tuples()
    )


# --- aggregates, cached per customer version --------------------------------------------
#
# The balance, aging and tab counts read every unpaid invoice (and count every invoice) of
# the account: the one cost on these pages that grows with the account. They are kept per
# process under (customer, billing_version, business date, site scope). The version is
# raised by database triggers in the same transaction as any change to the customer's
# invoices (migration 0010) and is read *before* the aggregate, so an entry is never older
# than the version it is filed under; a changed invoice means a new key, never a stale hit.
# Entries also expire after AGGREGATE_SECONDS, a bound for the one case the version cannot
# see: a database restored to an older backup under a running portal (restart after one).

AGGREGATE_SECONDS = 300
AGGREGATE_ENTRIES = 4096


@prepared
def _billing_version():
    return Customer.select(Customer.billing_version).where(Customer.id == Slot("customer"))


def _aggregate(kind: str, user, on: date, compute) -> dict:
    """`compute()` for this user's scope on `on`, or the entry filed under the same version."""
    cache = current_app.extensions.setdefault("billing_aggregates", {})
    customer_id = user.contact.customer_id
    version = _billing_version.execute(customer=customer_id).cursor.fetchone()
    sites = user.site_ids
    scope = None if sites is None else tuple(sorted(sites))
    key = (kind, customer_id, version and version[0], on, scope)
    now = time.monotonic()
    entry = cache.get(key)
    if entry is None or entry[0] < now:
        if len(cache) >= AGGREGATE_ENTRIES:
            cache.clear()
        entry = cache[key] = (now + AGGREGATE_SECONDS, compute())
    return dict(entry[1])


def summary(user, on: date | None = None) -> dict:
    """Open balance, overdue amount, counts and the aging buckets, what of it is pending and
    the company's credit (cached per billing version)."""
    on = on or today()
    return _aggregate("summary", user, on, lambda: _summary(user, on))


def _summary(user, on: date) -> dict:
    sites, scope = Invoice.scope_of(user)
    days = {f"d{n}": on - timedelta(days=n) for n in (30, 60, 90)}
    counts, amounts = [0] * len(BUCKETS), [0] * len(BUCKETS)
    for bucket, count, amount in _aging(sites, on=on, **days, **scope):
        counts[bucket], amounts[bucket] = int(count), int(amount)
    values = {key: amount for (key, _), amount in zip(BUCKETS, amounts, strict=True)}
    values.update(
        open_count=sum(counts),
        balance=sum(amounts),
        overdue_count=sum(counts[1:]),
        overdue=sum(amounts[1:]),
        buckets=[(key, label, values[key]) for key, label in BUCKETS],
        bucket_counts={key: count for (key, _), count in zip(BUCKETS, counts, strict=True)},
        pending=figures.pending_total(Invoice.for_user(user, Invoice.id)),
        # Credit belongs to the company, not a site: a site-limited login does not see it.
        credit=0
        if user.site_ids is not None
        else figures.credit_available(user.contact.customer_id),
    )
    return values


def aging_chart(buckets, currency: str = "USD") -> dict:
    """Bar geometry for the server-side SVG aging chart (no JavaScript, values as text)."""
    width, height, top, bottom = 560, 220, 28, 36
    peak = max([amount for _, _, amount in buckets] + [1])
    slot = width / len(buckets)
    bar = slot * 0.56
    bars = []
    for index, (key, label, amount) in enumerate(buckets):
        h = 0 if not amount else max(2.0, (height - top - bottom) * amount / peak)
        x = index * slot + (slot - bar) / 2
        bars.append(
            {
                "key": key,
                "label": label,
                "amount": amount,
                "text": money.format_cents(amount, currency),
                "x": round(x, 1),
                "y": round(height - bottom - h, 1),
                "w": round(bar, 1),
                "h": round(h, 1),
                "cx": round(x + bar / 2, 1),
            }
        )
    return {"width": width, "height": height, "base": height - bottom, "bars": bars}


@prepared
def _recent_invoices(sites):
    """The scope's newest invoices, newest first."""
    return (
        Invoice.scoped(sites, *INVOICE_ROW_FIELDS)
        .order_by(Invoice.issue_date.desc(), Invoice.id.desc())
        .limit(Slot("limit"))
        .objects(InvoiceRow)
    )


def recent_invoices(user, limit: int = 5) -> list:
    """The newest invoices, each as a new payment sees it (two queries)."""
    sites, scope = Invoice.scope_of(user)
    return figures.payable_views(_recent_invoices(sites, limit=limit, **scope))


def payments_within(customer, sites):
    """Payments of `customer` (not rejected), and for a site-limited scope only payments
    applied to an invoice of those `sites` (values or Slots, like `CustomerOwned.within`)."""
    query = Payment.select().where((Payment.customer == customer) & (Payment.status != "rejected"))
    if sites is not None:
        applied_here = (
            PaymentApplication.select(PaymentApplication.payment)
            .join(Invoice)
            .where(Invoice.site.in_(sites))
        )
        query = query.where(Payment.id.in_(applied_here))
    return query


def payments_for(user):
    """Payments the user may see: the company's, or for a site-scoped user only payments
    applied to an invoice of their sites."""
    return payments_within(user.contact.customer_id, user.site_ids)


# What the dashboard lists of a payment.
PAYMENT_ROW_FIELDS = (
    Payment.id,
    Payment.receipt_number,
    Payment.received_at,
    Payment.status,
    Payment.amount_cents,
    Payment.currency,
)


@prepared
def _recent_payments(sites):
    """The scope's newest payments, newest first."""
    return (
        payments_within(Slot("customer"), site_slots(sites))
        .select(*PAYMENT_ROW_FIELDS)
        .order_by(Payment.received_at.desc(), Payment.id.desc())
        .limit(Slot("limit"))
        .objects(PlainRow)
    )


def recent_payments(user, limit: int = 5) -> list:
    """The newest payments (one query)."""
    sites, scope = Invoice.scope_of(user)
    return _recent_payments(sites, limit=limit, **scope)


def open_counts(user) -> dict:
    """Open quotes and cases for the roles the user has (one query per role)."""
    from . import cases, quotes, settings

    values = settings.load()
    counts = {}
    if user.has_role("quotes") and values["module_quotes"]:
        # The same rule as the Quotes page: published and still inside valid-until.
        counts["quotes"] = quotes.waiting_count(user)
    if user.has_role("cases") and values["module_cases"]:
        counts["cases"] = cases.open_count(user)
    return counts


# --- the list -----------------------------------------------------------------------------


@dataclass
class ListParams:
    """The list's query string, validated: unknown values fall back to defaults."""

    status: str = "open"
    q: str = ""
    sort: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args) -> "ListParams":
        status = args.get("status", "open")
        status = status if status in STATUSES else "open"
        sort = args.get("sort", "")
        key = sort.removeprefix("-")
        # Canonical spelling only ("due" or "-due"): the sort is part of a prepared query's
        # shape, so "--due" must not compile and keep another copy.
        sort = sort if key in SORTS else DEFAULT_SORT[status]
        try:
            page = max(1, min(int(args.get("page", 1)), 100_000))
        except (TypeError, ValueError):
            page = 1
        q = " ".join((args.get("q") or "").split())[:50]
        return cls(status=status, q=q, sort=sort, page=page)

    def args(self, **changes) -> dict:
        """Query-string values for a link (defaults left out, so URLs stay short)."""
        values = {"status": self.status, "q": self.q, "sort": self.sort, "page": self.page}
        values.update(changes)
        if values["sort"] == DEFAULT_SORT[values["status"]]:
            values.pop("sort")
        if values["page"] == 1:
            values.pop("page")
        if not values["q"]:
            values.pop("q")
        return values

    def url(self, base: str, **changes) -> str:
        """`base` (the list's path) with the query string of `args(**changes)`."""
        query = urlencode(self.args(**changes))
        return f"{base}?{query}" if query else base

    def sort_link(self, key: str) -> dict:
        """Changes to sort by `key`, flipping the direction when it is already the sort."""
        current = self.sort.lstrip("-")
        if current == key:
            new = key if self.sort.startswith("-") else f"-{key}"
        else:
            new = f"-{key}" if key in ("issued", "total", "balance") else key
        return {"sort": new, "page": 1}

    def sorted_by(self, key: str) -> str | None:
        """`ascending`/`descending` for the column sorted on (aria-sort), else None."""
        if self.sort.lstrip("-") != key:
            return None
        return "descending" if self.sort.startswith("-") else "ascending"


def filtered(user, params: ListParams, on: date | None = None, *fields):
    """The scoped, filtered query of the list (not yet sorted or paged)."""
    query = status_filter(Invoice.for_user(user, *fields), params.status, on or today())
    if params.q:
        query = query.where(matching(params.q))
    return query


def matching(q: str):
    """Invoices whose number, description, PO or a line's description contains `q` (any
    case; `%` and `_` are characters, not wildcards).

    Only ever added to a query of one account's invoices: those are read through the
    customer index, and each unmatched one costs one probe of its lines' index, so a search
    costs the same however many invoices other accounts have.
    """
    # `contains` is ILIKE on PostgreSQL and LIKE (ASCII any case) on SQLite: no LOWER(),
    # which cost more than the LIKEs themselves on a large account.
    in_lines = InvoiceLine.select(SQL("1")).where(
        (InvoiceLine.invoice == Invoice.id) & InvoiceLine.description.contains(q)
    )
    return (
        Invoice.number.contains(q)
        | Invoice.description.contains(q)
        | Invoice.customer_po.contains(q)
        | fn.EXISTS(in_lines)
    )


def status_filter(query, status: str, on):
    """Narrow to a status tab; `on` (the business date) is a date or a Slot."""
    if status == "open":
        return Invoice.unpaid(query)
    if status == "overdue":
        return Invoice.unpaid(query).where(Invoice.due_date < on)
    if status == "paid":
        return query.where((Invoice.status == "open") & (Invoice.balance_expr() <= 0))
    return query


def sort_by(query, sort: str):
    """Apply a list sort, with the id as a tiebreak so pages never overlap."""
    column = SORTS[sort.lstrip("-")]
    if sort.startswith("-"):
        return query.order_by(column.desc(), Invoice.id.desc())
    return query.order_by(column.asc(), Invoice.id.asc())


@prepared
def _page_rows(sites, status, sort):
    """One page of an unsearched list. Deferred join: the page's ids come from the index
    alone (a deep OFFSET then skips index entries, not table rows), and only those rows
    are read in full."""
    on = Slot("on", Invoice.due_date)
    ids = sort_by(status_filter(Invoice.scoped(sites, Invoice.id), status, on), sort)
    return _rows_by_id(ids.limit(Slot("limit")).offset(Slot("offset")), sort)


def _rows_by_id(ids, sort: str):
    """The list rows of the invoices a subquery of `ids` names, in the list's order."""
    rows = Invoice.select(*INVOICE_ROW_FIELDS).where(Invoice.id.in_(ids))
    return sort_by(rows, sort).objects(InvoiceRow)


@dataclass
class Page:
    items: list
    total: int
    page: int
    pages: int
    per_page: int
    sums: dict = field(default_factory=dict)

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return min(self.total, self.page * self.per_page)

    def window(self, size: int = 2) -> list:
        """Page numbers to link, with None for a gap: 1 … 4 5 [6] 7 8 … 40."""
        pages = {1, self.pages, *range(self.page - size, self.page + size + 1)}
        result, last = [], 0
        for n in sorted(p for p in pages if 1 <= p <= self.pages):
            if n - last > 1:
                result.append(None)
            result.append(n)
            last = n
        return result


def invoice_page(user, params: ListParams, per_page: int = PER_PAGE, on=None, counts=None) -> Page:
    """One page of the list plus its count and balance sum; the tab counts (`status_counts`)
    already hold both unless a search narrows the list, so it is usually one query."""
    if counts is not None and not params.q:
        balances = {
            "open": counts["open_balance"],
            "overdue": counts["overdue_balance"],
            "paid": 0,
            "all": counts["open_balance"],
        }
        row = {"n": counts[params.status], "balance": balances[params.status]}
    else:
        row = (
            filtered(
                user,
                params,
                on,
                fn.COUNT(Invoice.id).alias("n"),
                fn.COALESCE(fn.SUM(Invoice.due_expr()), 0).alias("balance"),
            )
            .dicts()
            .get()
        )
    total = int(row["n"] or 0)
    pages = max(1, math.ceil(total / per_page))
    page = min(params.page, pages)
    if params.q:
        # Searches vary too much to be worth compiling once: the same deferred join, built.
        ids = sort_by(filtered(user, params, on, Invoice.id), params.sort)
        items = list(_rows_by_id(ids.paginate(page, per_page), params.sort))
    else:
        sites, scope = Invoice.scope_of(user)
        items = _page_rows(
            sites,
            params.status,
            params.sort,
            on=on or today(),
            limit=per_page,
            offset=(page - 1) * per_page,
            **scope,
        )
    items = figures.payable_views(items)
    return Page(items, total, page, pages, per_page, {"balance": int(row["balance"] or 0)})


CSV_HEADER = [
    "number",
    "issue_date",
    "due_date",
    "status",
    "currency",
    "total",
    "paid",
    "discount",
    "balance",
    "pending",
    "description",
]


def csv_rows(user, params: ListParams, on=None):
    """The filtered list as CSV text, streamed in chunks (header first)."""
    on = on or today()
    buffer = io.StringIO()
    writer = spreadsheet.writer(buffer)  # every text cell neutralised (G6)
    writer.writerow(CSV_HEADER)
    pending = figures.pending_by_invoice(filtered(user, params, on, Invoice.id))
    query = sort_by(filtered(user, params, on), params.sort).iterator()
    for count, invoice in enumerate(query, start=1):
        waiting = sum(p.covers for p in pending.get(invoice.id, ()))
        writer.writerow(
            [
                invoice.number,
                invoice.issue_date.isoformat(),
                invoice.due_date.isoformat(),
                invoice.state(on),
                invoice.currency,
                money.to_decimal(invoice.total_cents),
                money.to_decimal(invoice.amount_paid_cents),
                money.to_decimal(invoice.discount_taken_cents),
                money.to_decimal(invoice.balance_cents),
                money.to_decimal(waiting),
                invoice.description,
            ]
        )
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- one invoice --------------------------------------------------------------------------


@prepared
def _invoice_by_id(sites):
    """One invoice by id, inside the scope."""
    return Invoice.scoped(sites).where(Invoice.id == Slot("id")).limit(1)


def invoice_for(user, invoice_id) -> Invoice | None:
    """One invoice the user may see, or None (the view answers 404)."""
    try:
        invoice_id = int(invoice_id)
    except (TypeError, ValueError):
        return None
    sites, scope = Invoice.scope_of(user)
    return _invoice_by_id.first(sites, id=invoice_id, **scope)


@prepared
def _lines_of():
    """An invoice's lines in their printed order."""
    return (
        InvoiceLine.select()
        .where(InvoiceLine.invoice == Slot("invoice"))
        .order_by(InvoiceLine.position, InvoiceLine.id)
    )


def lines_of(invoice) -> list:
    return _lines_of(invoice=invoice.id)


@prepared
def _applications_of():
    """The applied payments of an invoice, with each payment."""
    return (
        PaymentApplication.select(PaymentApplication, Payment)
        .join(Payment)
        .where((PaymentApplication.invoice == Slot("invoice")) & (Payment.status == "applied"))
        .order_by(Payment.received_at, PaymentApplication.id)
    )


def applications_of(invoice) -> list:
    """Payments applied to the invoice, with their payment (one query)."""
    return _applications_of(invoice=invoice.id)


@prepared
def _cases_of(sites):
    """The scope's support cases about one invoice, newest first."""
    return (
        SupportCase.scoped(sites)
        .where(SupportCase.invoice == Slot("invoice"))
        .order_by(SupportCase.created_at.desc())
    )


def cases_of(user, invoice) -> list:
    """Support cases about the invoice, newest first."""
    sites, scope = SupportCase.scope_of(user)
    return _cases_of(sites, invoice=invoice.id, **scope)


# --- paying from the list -----------------------------------------------------------------


@dataclass
class Row:
    """One invoice in a payment preview."""

    invoice: Invoice
    amount: int = 0
    discount: int = 0
    error: str = ""

    @property
    def balance_after(self) -> int:
        return self.invoice.balance_cents - self.amount - self.discount


@dataclass
class Preview:
    """What a payment would do, recomputed on the server from the submitted form."""

    rows: list = field(default_factory=list)
    unallocated: int = 0
    mode: str = "selected"
    errors: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows if not r.error)

    @property
    def discount(self) -> int:
        return sum(r.discount for r in self.rows if not r.error)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.errors and not any(r.error for r in self.rows)

    @property
    def currency(self) -> str:
        return self.rows[0].invoice.currency if self.rows else "USD"

    def lines(self) -> list:
        return [(r.invoice, r.amount) for r in self.rows if r.amount > 0]


MAX_SELECTED = 500


def payable(user, ids=None, covered: bool = False) -> list:
    """Open invoices of the user as a new payment sees them (`figures.Payable`: less what is
    pending), oldest due first; those fully covered by pending payments only when `covered`."""
    query = Invoice.unpaid(Invoice.for_user(user))
    if ids is not None:
        query = query.where(Invoice.id.in_(ids))
    views = figures.payable_views(
        query.order_by(Invoice.due_date, Invoice.issue_date, Invoice.id).limit(MAX_SELECTED)
    )
    return views if covered else [v for v in views if v.balance_cents > 0]


def suggested(invoice, on: date | None = None) -> int:
    """The amount that clears an invoice today (its discounted balance while the offer lasts);
    for a `figures.Payable`, what clears it besides the payments already pending."""
    return invoice.balance_cents - money.discount_available(invoice, on or today())


def parse_ids(values) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(ids))[:MAX_SELECTED]


def preview_selected(user, ids, typed: dict, settings: dict, on=None) -> Preview:
    """Each ticked invoice with the amount typed for it (default: what clears it today).

    `typed` maps invoice id to the raw text of its amount field; each line is validated by
    the payments core's own rules, so the preview can never promise what checkout refuses.
    """
    on = on or today()
    preview = Preview(mode="selected")
    for invoice in payable(user, ids, covered=True):
        raw = typed.get(invoice.id)
        row = Row(invoice)
        if invoice.balance_cents <= 0:
            row.error = payments.covered_message(invoice)
            preview.rows.append(row)
            continue
        if raw is None or not raw.strip() or not settings["partial_payments"]:
            amount = suggested(invoice, on)
        else:
            try:
                amount = money.parse_amount(raw)
            except money.AmountError as exc:
                row.error = str(exc)
                preview.rows.append(row)
                continue
        try:
            allocation = payments.plan([(invoice, amount)], settings, on).allocations[0]
        except payments.PaymentError as exc:
            row.amount = amount
            row.error = exc.message
        else:
            row.amount, row.discount = allocation.amount_cents, allocation.discount_cents
        preview.rows.append(row)
    if not preview.rows:
        preview.errors.append("Tick at least one open invoice to pay.")
    return preview


def preview_amount(user, amount_text: str, ids, settings: dict, on=None) -> Preview:
    """ "Pay what you can": one amount spread oldest due first (over the ticked invoices when
    any are ticked), with the discounts it earns and the balance left on each."""
    on = on or today()
    preview = Preview(mode="amount")
    try:
        amount = money.parse_amount(amount_text)
    except money.AmountError as exc:
        preview.errors.append(str(exc))
        return preview
    if amount <= 0:
        preview.errors.append("Enter an amount greater than zero.")
        return preview
    invoices = payable(user, ids or None)
    allocations, left = money.allocate(invoices, amount, on)
    preview.rows = [Row(a.invoice, a.amount_cents, a.discount_cents) for a in allocations]
    preview.unallocated = left
    if left:
        preview.errors.append(
            f"That is {money.format_cents(left, preview.currency)} more than "
            + ("the ticked invoices owe." if ids else "you owe.")
            + " Lower the amount."
        )
    elif not settings["partial_payments"] and any(r.balance_after > 0 for r in preview.rows):
        preview.errors.append(
            "Invoices must be paid in full. Raise the amount to clear the last invoice."
        )
    else:
        minimum = settings["minimum_partial_cents"]
        last = preview.rows[-1] if preview.rows else None
        if last and last.balance_after > 0 and last.amount < minimum:
            last.error = "The smallest partial payment is " + money.format_cents(minimum) + "."
    if not preview.rows and not preview.errors:
        preview.errors.append("You have no open invoices to pay.")
    return preview


def preview_all(user, on=None) -> Preview:
    """Every open invoice, each cleared in full (with any discount still open)."""
    on = on or today()
    preview = Preview(mode="all")
    for invoice in payable(user):
        allocation = money.settle(invoice, invoice.balance_cents, on)
        preview.rows.append(Row(invoice, allocation.amount_cents, allocation.discount_cents))
    if not preview.rows:
        preview.errors.append("You have no open invoices to pay.")
    return preview


@dataclass
class CreditPlan:
    """Applying the company's credit: the credit, each open invoice with the amount to apply
    (typed, else the credit spread oldest due first), and what is wrong with it."""

    credit: int
    rows: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows)

    @property
    def currency(self) -> str:
        return self.rows[0].invoice.currency if self.rows else "USD"

    def lines(self) -> list:
        return [(r.invoice, r.amount) for r in self.rows if r.amount > 0]


def credit_plan(user, typed: dict | None = None, on=None) -> CreditPlan:
    """What applying credit would do; `typed` maps invoice id to the raw amount typed."""
    on = on or today()
    plan = CreditPlan(figures.credit_available(user.contact.customer_id))
    invoices = payable(user)
    spread, _ = money.allocate(invoices, plan.credit, on)
    proposed = {a.invoice.id: a.amount_cents for a in spread}
    for invoice in invoices:
        row = Row(invoice, proposed.get(invoice.id, 0))
        raw = (typed or {}).get(invoice.id)
        if typed is not None:
            row.amount = 0
            if raw and raw.strip():
                try:
                    row.amount = money.parse_amount(raw)
                except money.AmountError as exc:
                    row.error = str(exc)
        if row.amount > invoice.balance_cents:
            row.error = "At most " + money.format_cents(invoice.balance_cents, invoice.currency)
        plan.rows.append(row)
    if plan.total > plan.credit:
        plan.errors.append(
            "That is more than your credit of " + money.format_cents(plan.credit) + "."
        )
    return plan


def lines_for(user, pairs) -> list:
    """Confirmed (invoice id, cents) pairs from the review form, re-fetched through the scope;
    an id the user cannot see is dropped, so checkout only ever sees their own invoices."""
    wanted = {}
    for invoice_id, cents in pairs:
        wanted.setdefault(invoice_id, cents)  # one line per invoice: a repeat never pays twice
    invoices = {i.id: i for i in payable(user, list(wanted))}
    return [(invoices[i], cents) for i, cents in wanted.items() if i in invoices]


def pay(user, lines, provider, payer_name, payer_email, start=None):
    """Start one payment for several invoices through the payments core (`start`: a saved
    card charged directly, `saved_methods.SavedStart`)."""
    return payments.checkout(
        user.customer,
        lines,
        provider,
        payer_name,
        payer_email,
        portal_user=user,
        start=start,
    )


@prepared
def _invoice_totals(sites):
    """How many invoices the scope has, and how many of them are void."""
    # COUNT(*), not COUNT(id): SQLite then counts index entries without reading a column.
    void = Invoice.scoped(sites, fn.COUNT(SQL("*"))).where(Invoice.status == "void")
    return Invoice.scoped(sites, fn.COUNT(SQL("*")), void).tuples()


def status_counts(user, on=None) -> dict:
    """How many invoices each status tab holds, and the open and overdue balances.

    The dashboard's unpaid aggregate plus one count of the account's index entries; paid
    (stored as open, nothing left to pay) is what remains. One query with a CASE per tab
    costs several times as much: it evaluates every condition on every invoice.
    """
    on = on or today()
    return _aggregate("counts", user, on, lambda: _status_counts(user, on))


def _status_counts(user, on: date) -> dict:
    unpaid = summary(user, on)
    sites, scope = Invoice.scope_of(user)
    every, void = _invoice_totals.first(sites, **scope)
    return {
        "all": every,
        "open": unpaid["open_count"],
        "overdue": unpaid["overdue_count"],
        "paid": every - void - unpaid["open_count"],
        "open_balance": unpaid["balance"],
        "overdue_balance": unpaid["overdue"],
        # What "Pay all open" charges: the review's own total (discounts, less pending).
        "pay_all": preview_all(user, on).total if unpaid["open_count"] else 0,
    }
