"""The money figures a customer reads, each defined once, used by every page, email and export.

- **Amount due** of an invoice: `Invoice.balance_cents` (nothing on a void invoice).
- **Pending** on an invoice: money promised or on its way that the business has not
  received yet — an offline payment (bank transfer, cheque) waiting for staff to confirm
  it, or a bank debit the provider has not settled. A checkout page left open is not a
  payment and is not pending: the payments core supersedes it when someone pays again.
  Pending money still counts as owed (it may never arrive), but a new payment is only
  offered what is not already pending.
- **Payable** on an invoice: what a new payment may still cover, `amount due - pending`
  (`payable_view`); the early-payment discount is offered to it as long as no pending
  payment has already planned that discount.
- **Credit available** to a customer: the unapplied part of its applied payments, which
  shrinks as credit is applied to invoices or refunded.
- **Discount available on a day**: `money.discount_available` on the payable view.
"""

from dataclasses import dataclass
from datetime import datetime

from peewee import Query, fn

from ..models import Payment, PaymentAttempt, PaymentAttemptItem
from .providers import PROVIDER_LABELS


@dataclass(frozen=True)
class Pending:
    """One pending payment's share of one invoice."""

    payment_id: int
    receipt_number: str
    amount_cents: int
    discount_cents: int
    provider: str
    since: datetime
    portal_user_id: int | None
    owner: str

    @property
    def method(self) -> str:
        """How it is being paid, as people say it."""
        return PROVIDER_LABELS.get(self.provider, self.provider)

    @property
    def covers(self) -> int:
        """How much of the amount due it settles when it arrives (its cash and discount)."""
        return self.amount_cents + self.discount_cents


def pending_by_invoice(invoice_ids) -> dict[int, list[Pending]]:
    """The pending payments of each invoice, oldest first (one query); `invoice_ids` is a
    list of ids or a query selecting invoice ids."""
    ids = invoice_ids if isinstance(invoice_ids, Query) else list(invoice_ids)
    if not isinstance(ids, Query) and not ids:
        return {}
    query = (
        _pending_items(
            ids,
            PaymentAttemptItem.invoice,
            PaymentAttemptItem.amount_cents,
            PaymentAttemptItem.discount_cents,
            Payment.id,
            Payment.receipt_number,
            Payment.provider,
            Payment.received_at,
            PaymentAttempt.portal_user,
            PaymentAttempt.owner,
        )
        .order_by(Payment.received_at, Payment.id)
        .tuples()
    )
    result: dict[int, list[Pending]] = {}
    for invoice_id, amount, discount, pid, number, provider, since, user_id, owner in query:
        result.setdefault(invoice_id, []).append(
            Pending(pid, number, amount, discount, provider, since, user_id, owner)
        )
    return result


def pending_total(invoice_query) -> int:
    """What the pending payments of a query's invoices will cover (one query)."""
    covers = PaymentAttemptItem.amount_cents + PaymentAttemptItem.discount_cents
    total = _pending_items(invoice_query, fn.COALESCE(fn.SUM(covers), 0)).scalar()
    return int(total or 0)


def _pending_items(invoices, *fields):
    """Planned items of pending payments on `invoices` (ids or a query of ids)."""
    return (
        PaymentAttemptItem.select(*fields)
        .join(PaymentAttempt)
        .join(Payment, on=(Payment.attempt == PaymentAttempt.id))
        .where(PaymentAttemptItem.invoice.in_(invoices) & (Payment.status == "pending"))
    )


class Payable:
    """An invoice as a new payment sees it: the amount due less what is already pending.

    Reads like the invoice (number, currency, dates, terms) for the money rules and the
    pages; `balance_cents` is what a new payment may cover, `due_cents` the invoice's own
    amount due, `pending` its pending payments.
    """

    def __init__(self, invoice, pending=()):
        self.invoice = invoice
        self.pending = list(pending)
        self.pending_cents = sum(p.covers for p in self.pending)
        self.due_cents = invoice.balance_cents
        self.balance_cents = max(0, self.due_cents - self.pending_cents)
        # A discount a pending payment already planned is not offered twice.
        self.discount_taken_cents = invoice.discount_taken_cents + sum(
            p.discount_cents for p in self.pending
        )

    def __getattr__(self, name):
        return getattr(self.invoice, name)


def payable_view(invoice, pending: dict | None = None) -> Payable:
    """The invoice as a new payment sees it; `pending` is a `pending_by_invoice` result
    (fetched here when not given)."""
    if pending is None:
        pending = pending_by_invoice([invoice.id])
    return Payable(invoice, pending.get(invoice.id, ()))


def payable_views(invoices) -> list[Payable]:
    """`payable_view` of several invoices with one query."""
    invoices = list(invoices)
    pending = pending_by_invoice([i.id for i in invoices])
    return [Payable(i, pending.get(i.id, ())) for i in invoices]


def _with_credit(customer_id, currency: str | None):
    query = Payment.select().where(
        (Payment.customer == customer_id)
        & (Payment.status == "applied")
        & (Payment.unapplied_cents > 0)
    )
    return query if currency is None else query.where(Payment.currency == currency)


def credit_available(customer_id, currency: str | None = None) -> int:
    """The customer's credit: unapplied money of its applied payments (one query)."""
    query = _with_credit(customer_id, currency).select(
        fn.COALESCE(fn.SUM(Payment.unapplied_cents), 0)
    )
    return int(query.scalar() or 0)


def credit_payments(customer_id, currency: str | None = None):
    """The customer's payments holding credit, oldest first (credit is used in that order)."""
    return _with_credit(customer_id, currency).order_by(Payment.received_at, Payment.id)
