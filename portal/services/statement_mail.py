"""Customer mail about money (issue 18): the new-invoice email and statements by email.

New invoice (`invoice_issued`, topic `new_invoice`): queued by `invoice_issued` in the
transaction that creates an invoice in the back office, to the billing contacts who want it
(`notices.recipients`, scoped to the invoice's site). Imported invoices send nothing: an
import mirrors the books, which send their own invoices, and an import of thousands of rows
must never mail thousands of people by surprise.

Statements (`statement`, topic `statement`): on the statement day of each month (Settings
`statement_day`, 1-28, 0 off) the worker (`run_due`, a money task) emails every customer with
something open its statement of the month before (from that day last month to the day
before), and staff send one on demand from the customer's page (`send_now`, the statement
the customer's own statement page opens with). The body is the statement service's result
as text (`statements.statement`, the aging of `billing.summary`), never a second sum.

"Never twice" is a database fact: a `StatementMail` row per (customer, period), unique,
inserted in the same transaction as the emails it records. A second worker, a worker run
twice at once, or a double click inserts nothing and queues nothing. A customer whose
contacts want no statement still gets its row (with nobody in `sent_to`), so the worker does
not compute its statement again every pass; staff can still send one on demand.
"""

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from .. import clock
from ..db import write_txn
from ..filters import datefmt, money
from ..models import Customer, Invoice
from ..models_statement_mail import StatementMail
from ..web import absolute_url
from . import audit, billing, notices, quickpay, settings, statements

log = logging.getLogger(__name__)

# Customers a worker pass handles at most; the pass returns how many, so the loop goes on.
BATCH = 50
# The open invoices a statement email lists with their pay links; the rest are in the portal.
MAX_OPEN_LISTED = 10
# The statement lines an email carries; a longer statement is read in the portal.
MAX_LINES = statements.STATEMENT_PAGE_SIZE


@dataclass(frozen=True)
class _Whole:
    """What the statement service needs of a viewer of the whole account."""

    customer_id: int

    @property
    def contact(self):
        return self

    site_ids = None


def pay_link(invoice) -> str:
    """The invoice's signed pay link, or its page in the portal while quick pay is off."""
    if settings.get("quick_pay_enabled"):
        return quickpay.pay_link(invoice)
    return absolute_url("billing.show", invoice_id=invoice.id)


# --- a new invoice --------------------------------------------------------------------------


def invoice_issued(invoice) -> int:
    """Queue the new-invoice email to the contacts who want it; call inside the transaction
    that creates the invoice. Returns how many were queued."""
    customer = Customer.get_by_id(invoice.customer_id)
    if not customer.portal_enabled:
        return 0  # its links would lead nowhere; the books send the invoice
    sent_to = notices.send(
        "invoice_issued",
        "new_invoice",
        customer.id,
        invoice.site_id,
        customer_name=customer.name,
        invoice_number=invoice.number,
        amount=money(invoice.total_cents, invoice.currency),
        due_date=datefmt(invoice.due_date),
        link=pay_link(invoice),
    )
    return len(sent_to)


# --- statements -----------------------------------------------------------------------------


def monthly_period(today: date, day: int) -> tuple[str, date, date] | None:
    """(period, start, end) of the monthly statement due on `today` for statement day `day`:
    None before the day comes in this month (or when statements are off)."""
    if not day or today.day < day:
        return None
    end = today.replace(day=day) - timedelta(days=1)
    # The same day of the month before (the day before this month's first is in it).
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=day)
    return today.strftime("%Y-%m"), start, end


def on_demand_period(today: date) -> tuple[str, date, date]:
    """(period, start, end) of a statement staff send now: the range the customer's own
    statement page opens with, once per customer and day."""
    start, end = statements.default_range(today)
    return today.isoformat(), start, end


def last_sent(customer) -> StatementMail | None:
    """The customer's latest statement email, for its page."""
    return (
        StatementMail.select()
        .where(StatementMail.customer == customer.id)
        .order_by(StatementMail.created_at.desc(), StatementMail.id.desc())
        .first()
    )


def _lines_text(result, currency: str) -> str:
    lines = []
    for line in result.lines[:MAX_LINES]:
        amount = (
            f"charged {money(line.debit, currency)}"
            if line.debit
            else f"received {money(line.credit, currency)}"
        )
        lines.append(
            f"{datefmt(line.day)} · {line.reference} · {line.description} · {amount} · "
            f"balance {money(line.balance, currency)}"
        )
    if len(result.lines) > MAX_LINES:
        lines.append(f"… and {len(result.lines) - MAX_LINES} more lines in the portal.")
    return "\n".join(lines) or "No invoices, payments or credits in this period."


def _aging_text(summary: dict, currency: str) -> str:
    return "\n".join(
        f"{label}: {money(amount, currency)}" for _, label, amount in summary["buckets"]
    )


def _open_text(customer_id: int) -> str:
    """The oldest open invoices, each with its pay link."""
    unpaid = Invoice.unpaid(Invoice.select().where(Invoice.customer == customer_id))
    count = unpaid.count()
    if not count:
        return "Nothing is open: thank you."
    heading = "Pay online" if settings.get("quick_pay_enabled") else "See and pay in the portal"
    parts = [heading]
    for invoice in unpaid.order_by(Invoice.due_date, Invoice.id).limit(MAX_OPEN_LISTED):
        parts.append(
            f"{invoice.number}, {money(invoice.balance_cents, invoice.currency)} due "
            f"{datefmt(invoice.due_date)}\n{pay_link(invoice)}"
        )
    if count > MAX_OPEN_LISTED:
        parts.append(f"… and {count - MAX_OPEN_LISTED} more open invoices in the portal.")
    return "\n\n".join(parts)


def _values(customer, start: date, end: date, today: date) -> tuple[dict, int]:
    """The statement's placeholders (all but the contact's own) and its closing balance."""
    viewer = _Whole(customer.id)
    result = statements.statement(viewer, start, end)
    currency = result.currency
    values = {
        "customer_name": customer.name,
        "start": datefmt(start),
        "end": datefmt(end),
        "opening": money(result.opening, currency),
        "closing": money(result.closing, currency),
        "lines": _lines_text(result, currency),
        "aging": _aging_text(billing.summary(viewer, today), currency),
        "open_invoices": _open_text(customer.id),
        "link": absolute_url("statements.index", start=start.isoformat(), end=end.isoformat()),
    }
    return values, result.closing


def _send(customer, period: str, start: date, end: date, today: date, staff=None):
    """Email the customer's statement for `period` unless it already went: the row and the
    emails in one transaction. Returns the row, or None when another got there first."""
    if (
        StatementMail.select()
        .where((StatementMail.customer == customer.id) & (StatementMail.period == period))
        .exists()
    ):
        return None
    values, closing = _values(customer, start, end, today)
    with write_txn():
        inserted = (
            StatementMail.insert(
                customer=customer.id,
                period=period,
                start=start,
                end=end,
                closing_cents=closing,
                staff_user=staff.id if staff is not None else None,
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        if not inserted:
            return None  # another worker (or click) holds this period
        sent_to = notices.send("statement", "statement", customer.id, **values)
        row = StatementMail.get(
            (StatementMail.customer == customer.id) & (StatementMail.period == period)
        )
        row.sent_to = "\n".join(sent_to)
        row.save()
        audit.record(
            "statement.emailed",
            customer,
            actor=staff,
            period=period,
            start=start.isoformat(),
            end=end.isoformat(),
            to=sent_to,
        )
    return row


def due_customers(period: str):
    """Customers with something open, the portal on, and no statement for `period` yet."""
    open_ones = Invoice.unpaid(Invoice.select(Invoice.customer))
    done = StatementMail.select(StatementMail.customer).where(StatementMail.period == period)
    return (
        Customer.select()
        .where(
            Customer.id.in_(open_ones)
            & (Customer.portal_enabled == True)  # noqa: E712
            & Customer.id.not_in(done)
        )
        .order_by(Customer.id)
    )


def run_due(today: date | None = None) -> int:
    """One worker pass: the month's statements due today, at most BATCH customers; returns
    how many customers it handled (each once, whichever worker gets there first)."""
    today = today or clock.business_today()
    due = monthly_period(today, settings.get("statement_day"))
    if due is None:
        return 0
    period, start, end = due
    handled = 0
    for customer in list(due_customers(period).limit(BATCH)):
        try:
            if _send(customer, period, start, end, today) is not None:
                handled += 1
        except Exception:  # one customer's trouble never stops the others' statements
            log.exception("statement email failed for customer %s", customer.id)
    return handled


class AlreadySent(Exception):
    """Staff asked for a statement that already went today."""

    def __init__(self, row: StatementMail):
        super().__init__("already sent")
        self.row = row


def send_now(customer, staff) -> StatementMail:
    """Staff's "Email statement": the customer's statement now, once per day (a double
    click sends one); raises AlreadySent with the earlier row."""
    today = clock.business_today()
    period, start, end = on_demand_period(today)
    row = _send(customer, period, start, end, today, staff=staff)
    if row is None:
        raise AlreadySent(
            StatementMail.get(
                (StatementMail.customer == customer.id) & (StatementMail.period == period)
            )
        )
    return row
