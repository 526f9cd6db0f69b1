"""Accounts-receivable statements, the aging report and payment history of one customer.

A statement lists, for a date range, the invoices issued (debits) and the payments and
discounts received (credits) between an opening and a closing balance. Amounts an
invoice shows as paid without a portal payment behind them (paid in the books before the
invoice reached the portal) count as a credit on the invoice's issue date, so the closing
balance as of today always equals what the invoices still owe.
"""

import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from peewee import Case, fn

from .. import clock, money, spreadsheet
from ..models import Invoice, Payment, PaymentApplication, Refund
from . import billing

MAX_RANGE_DAYS = 366 * 5


class RangeError(ValueError):
    """A date range that cannot be used; `field` is the input it belongs next to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def default_range(on: date | None = None) -> tuple[date, date]:
    """From the first day of the month two months back, to today."""
    on = on or billing.today()
    month = on.month - 2
    year = on.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, 1), on


def parse_range(args, on: date | None = None) -> tuple[date, date, dict]:
    """Read `start` and `end` from a query string; returns the range and errors per field."""
    start, end = default_range(on)
    errors = {}
    for name in ("start", "end"):
        raw = (args.get(name) or "").strip()
        if not raw:
            continue
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            errors[name] = "Enter a date like 2026-01-31."
            continue
        if name == "start":
            start = value
        else:
            end = value
    if not errors and end < start:
        errors["end"] = "The end date must be on or after the start date."
    elif not errors and (end - start).days > MAX_RANGE_DAYS:
        errors["start"] = "Choose a range of at most five years."
    return start, end, errors


def _midnight(day: date) -> datetime:
    """The start of a business day (the statement's days are the business's, `clock`)."""
    return datetime.combine(day, time.min).replace(tzinfo=clock.business_zone())


def _day(moment: datetime) -> date:
    """The business day a timestamp falls on."""
    return moment.astimezone(clock.business_zone()).date()


@dataclass
class Line:
    day: date
    kind: str  # invoice, payment, credit
    reference: str
    description: str
    debit: int = 0
    credit: int = 0
    balance: int = 0
    invoice_id: int | None = None
    payment_id: int | None = None


@dataclass
class Statement:
    start: date
    end: date
    opening: int
    lines: list = field(default_factory=list)
    currency: str = "USD"
    invoiced_before: int = 0

    @property
    def invoiced(self) -> int:
        return sum(line.debit for line in self.lines)

    @property
    def received(self) -> int:
        return sum(line.credit for line in self.lines)

    @property
    def closing(self) -> int:
        return self.opening + self.invoiced - self.received


def _scoped(user, *fields):
    return Invoice.for_user(user, *fields).where(Invoice.status != "void")


def _applied_total():
    return fn.COALESCE(
        fn.SUM(PaymentApplication.amount_cents + PaymentApplication.discount_cents), 0
    )


def _applied_to(invoices):
    """Applications of applied payments to the invoices of a subquery."""
    return (
        PaymentApplication.select(_applied_total())
        .join(Payment)
        .where((Payment.status == "applied") & PaymentApplication.invoice.in_(invoices))
    )


def statement(user, start: date, end: date) -> Statement:
    """The A/R statement for [start, end]: five queries whatever the number of invoices."""
    before = _scoped(user, Invoice.id).where(Invoice.issue_date < start)
    owed_before = int(
        _scoped(user, fn.COALESCE(fn.SUM(Invoice.balance_expr()), 0))
        .where(Invoice.issue_date < start)
        .scalar()
        or 0
    )
    # Both sums in one pass over the account's applications, found by their customer in
    # the covering indexes of 0046 (a payment only pays its own customer's invoices): at a
    # million invoices they lie scattered through a big table, which a pass by invoice read.
    amount = PaymentApplication.amount_cents + PaymentApplication.discount_cents
    account = user.contact.customer_id
    applied_to_before, received_before = (
        int(total or 0)
        for total in _applied_to(_scoped(user, Invoice.id))
        .where((PaymentApplication.customer == account) & (Payment.customer == account))
        .select(
            fn.SUM(Case(None, [(PaymentApplication.invoice.in_(before), amount)], 0)),
            fn.SUM(Case(None, [(Payment.received_at < _midnight(start), amount)], 0)),
        )
        .tuples()
        .get()
    )
    result = Statement(start, end, owed_before + applied_to_before - received_before)
    # What the invoices issued before the range came to, less what the books paid outside
    # the portal: the whole account's opening before its payments (`_account_money`).
    result.invoiced_before = owed_before + applied_to_before

    applied = (
        PaymentApplication.select(_applied_total())
        .join(Payment)
        .where((Payment.status == "applied") & (PaymentApplication.invoice == Invoice.id))
    )
    # Only the columns a line needs, as tuples: a five-year range of a large account has tens
    # of thousands of invoices, and whole model rows cost most of the statement's time.
    issued = _scoped(
        user,
        Invoice.id,
        Invoice.issue_date,
        Invoice.number,
        Invoice.description,
        Invoice.total_cents,
        Invoice.currency,
        Invoice.amount_paid_cents + Invoice.discount_taken_cents - applied,
    ).where((Invoice.issue_date >= start) & (Invoice.issue_date <= end))
    lines = []
    for invoice_id, day, number, description, total, currency, outside in issued.order_by(
        Invoice.issue_date, Invoice.id
    ).tuples():
        result.currency = currency
        lines.append(
            Line(
                day, "invoice", number, description or "Invoice", debit=total, invoice_id=invoice_id
            )
        )
        if outside > 0:
            lines.append(
                Line(
                    day,
                    "credit",
                    number,
                    "Paid before this portal (from our books)",
                    credit=int(outside),
                    invoice_id=invoice_id,
                )
            )
    if user.site_ids is None:
        _account_money(user, result, lines, start, end)
        _finish(result, lines)
        return result
    received = (
        Payment.select(
            Payment.id,
            Payment.receipt_number,
            Payment.received_at,
            fn.SUM(PaymentApplication.amount_cents).alias("cash"),
            fn.SUM(PaymentApplication.discount_cents).alias("discount"),
        )
        .join(PaymentApplication)
        .where(
            (Payment.status == "applied")
            & (Payment.received_at >= _midnight(start))
            & (Payment.received_at < _midnight(end + timedelta(days=1)))
            & PaymentApplication.invoice.in_(_scoped(user, Invoice.id))
        )
        .group_by(Payment.id, Payment.receipt_number, Payment.received_at)
    )
    for payment in received:
        day = _day(payment.received_at)
        cash, discount = int(payment.cash or 0), int(payment.discount or 0)
        lines.append(
            Line(
                day,
                "payment",
                payment.receipt_number,
                "Payment — thank you",
                credit=cash,
                payment_id=payment.id,
            )
        )
        if discount:
            lines.append(
                Line(
                    day,
                    "credit",
                    payment.receipt_number,
                    "Early-payment discount",
                    credit=discount,
                    payment_id=payment.id,
                )
            )
    _finish(result, lines)
    return result


def _finish(result: Statement, lines: list) -> None:
    """Order the lines and run the balance from the opening."""
    order = {"invoice": 0, "refund": 1, "credit": 2, "payment": 3}
    lines.sort(key=lambda line: (line.day, order[line.kind], line.reference))
    running = result.opening
    for line in lines:
        running += line.debit - line.credit
        line.balance = running
    result.lines = lines


def _discounts(customer_id):
    """Early-payment discounts of the account's applied payments, each with the day it was
    earned: the payment's day, or the day credit was applied."""
    return (
        PaymentApplication.select(
            Payment.id,
            Payment.receipt_number,
            Payment.received_at,
            PaymentApplication.source,
            PaymentApplication.created_at,
            PaymentApplication.discount_cents,
        )
        .join(Payment)
        .where(
            (Payment.customer == customer_id)
            & (Payment.status == "applied")
            & (PaymentApplication.discount_cents > 0)
        )
        .tuples()
    )


def _account_money(user, result: Statement, lines: list, start: date, end: date) -> None:
    """The whole account's money lines: every payment received at its full amount (the part
    kept as credit included, so the closing balance is what is due less the credit),
    discounts on the day they were earned, refunds of credit as debits."""
    customer_id = user.contact.customer_id
    first, after = _midnight(start), _midnight(end + timedelta(days=1))
    before_refunds = before_discounts = 0
    applied = Payment.select().where(
        (Payment.customer == customer_id) & (Payment.status == "applied")
    )
    before_cash = int(
        applied.select(fn.COALESCE(fn.SUM(Payment.amount_cents), 0))
        .where(Payment.received_at < first)
        .scalar()
        or 0
    )
    for payment in applied.where((Payment.received_at >= first) & (Payment.received_at < after)):
        lines.append(
            Line(
                _day(payment.received_at),
                "payment",
                payment.receipt_number,
                "Payment — thank you"
                + (
                    f" ({money.format_cents(payment.unapplied_cents, payment.currency)} "
                    "kept as credit)"
                    if payment.unapplied_cents
                    else ""
                ),
                credit=payment.amount_cents,
                payment_id=payment.id,
            )
        )
    for pid, number, received_at, source, created_at, discount in _discounts(customer_id):
        at = received_at if source == "payment" else created_at
        if at < first:
            before_discounts += discount
        elif at < after:
            lines.append(
                Line(
                    _day(at),
                    "credit",
                    number,
                    "Early-payment discount",
                    credit=discount,
                    payment_id=pid,
                )
            )
    refunds = (
        Refund.select(Refund, Payment)
        .join(Payment)
        .where((Payment.customer == customer_id) & (Payment.status == "applied"))
    )
    for refund in refunds:
        if refund.created_at < first:
            before_refunds += refund.amount_cents
        elif refund.created_at < after:
            lines.append(
                Line(
                    _day(refund.created_at),
                    "refund",
                    refund.payment.receipt_number,
                    "Refund of credit",
                    debit=refund.amount_cents,
                    payment_id=refund.payment_id,
                )
            )
    result.opening = result.invoiced_before - before_cash - before_discounts + before_refunds


# Lines per page of a statement on screen; the CSV always has every line.
STATEMENT_PAGE_SIZE = 200


@dataclass
class StatementPage:
    """One page of a statement's lines, with the balance brought forward from the lines
    before it and carried forward to the next page."""

    lines: list
    number: int
    pages: int
    total: int
    brought_forward: int
    carried_forward: int
    size: int = STATEMENT_PAGE_SIZE

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return min(self.total, self.number * self.size)


def statement_page(result: Statement, number: int, size: int = STATEMENT_PAGE_SIZE):
    """Page `number` of the statement's lines (a 5-year statement of a large account was
    7 MB as one page): the opening, the totals and the closing stay those of the range."""
    total = len(result.lines)
    pages = max(1, -(-total // size))
    number = max(1, min(number, pages))
    first = (number - 1) * size
    lines = result.lines[first : first + size]
    brought = result.lines[first - 1].balance if first else result.opening
    carried = lines[-1].balance if lines else brought
    return StatementPage(lines, number, pages, total, brought, carried, size)


def statement_csv(result: Statement) -> str:
    """The statement as CSV: opening row, one row per line, closing row."""
    buffer = io.StringIO()
    writer = spreadsheet.writer(buffer)  # every text cell neutralised (G6)
    writer.writerow(["date", "type", "reference", "description", "debit", "credit", "balance"])
    writer.writerow(
        [
            result.start.isoformat(),
            "opening",
            "",
            "Opening balance",
            "",
            "",
            money.to_decimal(result.opening),
        ]
    )
    for line in result.lines:
        writer.writerow(
            [
                line.day.isoformat(),
                line.kind,
                line.reference,
                line.description,
                money.to_decimal(line.debit) if line.debit else "",
                money.to_decimal(line.credit) if line.credit else "",
                money.to_decimal(line.balance),
            ]
        )
    writer.writerow(
        [
            result.end.isoformat(),
            "closing",
            "",
            "Closing balance",
            money.to_decimal(result.invoiced),
            money.to_decimal(result.received),
            money.to_decimal(result.closing),
        ]
    )
    return buffer.getvalue()


# The aging page lists at most this many invoices per group; a group's own page lists them
# all, a page at a time (a 20,000-invoice account made the page 3.8 MB).
AGING_PREVIEW = 10
AGING_PAGE_SIZE = 50


def _bucket_where(key: str, on: date):
    """The due dates of one aging group, as `billing._aging` counts them: due before
    `before` (days late at least) and on or after `since` (days late at most)."""
    due = Invoice.due_date
    before, since = {
        "current": (None, on),
        "d1_30": (on, on - timedelta(days=30)),
        "d31_60": (on - timedelta(days=30), on - timedelta(days=60)),
        "d61_90": (on - timedelta(days=60), on - timedelta(days=90)),
        "d90": (on - timedelta(days=90), None),
    }[key]
    if before is None:
        return due >= since
    if since is None:
        return due < before
    return (due < before) & (due >= since)


def aging(user, on: date | None = None, bucket: str | None = None, page: int = 1) -> dict:
    """Open invoices grouped by days past due: each group's count and total (one cached
    query), the first AGING_PREVIEW invoices of each group, or, for one `bucket`, a page of
    its invoices. The page's size no longer grows with the account."""
    on = on or billing.today()
    summary = billing.summary(user, on)
    keys = [key for key, _ in billing.BUCKETS]
    if bucket not in keys:
        bucket = None
    unpaid = Invoice.unpaid(Invoice.for_user(user)).order_by(Invoice.due_date, Invoice.id)
    groups, detail = {}, None
    for key in [bucket] if bucket else keys:
        query = unpaid.where(_bucket_where(key, on))
        if bucket:
            total = summary["bucket_counts"][key]
            pages = max(1, -(-total // AGING_PAGE_SIZE))
            page = max(1, min(page, pages))
            rows = list(query.paginate(page, AGING_PAGE_SIZE))
            detail = billing.Page(rows, total, page, pages, AGING_PAGE_SIZE)
        elif summary["bucket_counts"][key]:
            rows = list(query.limit(AGING_PREVIEW))
        else:
            rows = []
        groups[key] = [(invoice, max((on - invoice.due_date).days, 0)) for invoice in rows]
    return {
        "summary": summary,
        "groups": groups,
        "counts": summary["bucket_counts"],
        "totals": {key: amount for key, _, amount in summary["buckets"]},
        "on": on,
        "bucket": bucket,
        "detail": detail,
    }


def payment_page(user, page: int, per_page: int = 25) -> billing.Page:
    """One page of the payment history, newest first (two queries)."""
    query = billing.payments_for(user)
    total = query.count()
    pages = max(1, -(-total // per_page))
    page = max(1, min(page, pages))
    items = list(
        query.order_by(Payment.received_at.desc(), Payment.id.desc()).paginate(page, per_page)
    )
    return billing.Page(items, total, page, pages, per_page)


def payment_for(user, payment_id) -> Payment | None:
    """One payment the user may see, or None (404)."""
    try:
        payment_id = int(payment_id)
    except (TypeError, ValueError):
        return None
    return billing.payments_for(user).where(Payment.id == payment_id).first()


def applications_for(user, payment) -> list:
    """What the payment paid, limited to the invoices the user may see."""
    return list(
        PaymentApplication.select(PaymentApplication, Invoice)
        .join(Invoice)
        .where(
            (PaymentApplication.payment == payment.id)
            & Invoice.id.in_(Invoice.for_user(user, Invoice.id))
        )
        .order_by(Invoice.due_date, Invoice.id)
    )
