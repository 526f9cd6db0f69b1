"""Payment reminders (issue 18): emails about an open invoice before and after its due date.

Staff turn them on in Settings (`payment_reminders`, off by default) and choose the schedule
(`reminder_schedule`: days from the due date, `-3, 0, 7, 30` is three days before, on the
day, a week and a month after). The worker (`run_due`, a money task that runs after autopay)
emails, for each open invoice whose step day has come, the billing contacts who want
"reminder" notices (`notices.recipients`, scoped to the invoice's site) with the invoice's
signed pay link and the one-click unsubscribe link and headers.

Nothing is sent about a void or paid invoice, an invoice that pending payments (a bank
transfer announced, a debit not settled) cover in full (`figures.payable_view`), one autopay
will charge (`autopay.will_charge`), or an invoice of a customer whose portal is off (its
links would lead nowhere; the books remind those).

"Never twice" is a database fact: a `PaymentReminder` row per (invoice, step), unique,
inserted in the same transaction as the emails it records, so a second worker inserts
nothing and queues nothing. Only the latest step whose day has come is sent: an invoice
imported 40 days overdue gets the 30-day reminder alone, and the steps before it get rows
marked `skipped`. A step that finds the invoice covered (autopay, pending payments) is
`held`: a row and no email; the next step looks again.
"""

import logging
from datetime import date, timedelta

from .. import clock
from ..db import write_txn
from ..filters import datefmt, money
from ..models import Customer, Invoice
from ..models_reminders import PaymentReminder
from . import audit, autopay, figures, notices, settings, statement_mail

log = logging.getLogger(__name__)

# Invoices a worker pass handles at most; the pass returns how many, so the loop goes on.
BATCH = 50


def when(due: date, today: date) -> str:
    """Where the invoice stands, as the email says it: `is due in 3 days`, `is due today`,
    `is overdue by 7 days`."""
    days = (today - due).days
    count = f"{abs(days)} day{'s' if abs(days) != 1 else ''}"
    if days < 0:
        return f"is due in {count}"
    if days == 0:
        return "is due today"
    return f"is overdue by {count}"


# --- which invoices are due for which step ------------------------------------------------


def due(steps: list[int], today: date, limit: int = BATCH) -> list[tuple[Invoice, int]]:
    """(invoice, step) of open invoices whose latest step with its day come has no row yet,
    oldest due date first: one query per step, each over the due dates whose latest step it
    is (the next step's day has not come)."""
    found: list[tuple[Invoice, int]] = []
    ordered = sorted(steps)
    for index, step in enumerate(ordered):
        band = Invoice.due_date <= today - timedelta(days=step)
        if index + 1 < len(ordered):
            band &= Invoice.due_date > today - timedelta(days=ordered[index + 1])
        handled = PaymentReminder.select(PaymentReminder.invoice).where(
            PaymentReminder.step == step
        )
        query = (
            Invoice.unpaid(Invoice.select(Invoice).join(Customer))
            .where(band & (Customer.portal_enabled == True) & Invoice.id.not_in(handled))  # noqa: E712
            .order_by(Invoice.due_date, Invoice.id)
            .limit(limit - len(found))
        )
        found.extend((invoice, step) for invoice in query)
        if len(found) >= limit:
            break
    return found


def _held(invoice, view) -> str:
    """Why the invoice gets no reminder now though it is open ("" when it gets one)."""
    if view.balance_cents <= 0:
        return "Pending payments cover it in full."
    if autopay.will_charge(invoice, view.balance_cents):
        return "Autopay will charge it."
    return ""


# --- one invoice's step --------------------------------------------------------------------


def remind(invoice_id: int, step: int, steps: list[int], today: date) -> PaymentReminder | None:
    """Handle one invoice's step unless another worker did: its row, the earlier steps' rows
    (skipped) and its emails in one transaction. Returns the row, or None when there was
    nothing to do (the invoice was paid or voided meanwhile, or the step was taken)."""
    with write_txn():
        invoice = Invoice.get_by_id(invoice_id)
        if invoice.status != "open" or invoice.balance_cents <= 0:
            return None
        view = figures.payable_view(invoice)
        held = _held(invoice, view)
        inserted = (
            PaymentReminder.insert(
                invoice=invoice.id,
                step=step,
                state="held" if held else "sent",
                due_date=invoice.due_date,
                balance_cents=view.balance_cents,
                note=held,
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        if not inserted:
            return None  # another worker holds this step
        passed = [s for s in steps if s < step]
        if passed:
            # Their day came while nothing was sent (reminders were off, or the invoice came
            # in late): recorded, never sent in a burst now.
            PaymentReminder.insert_many(
                [
                    {
                        "invoice": invoice.id,
                        "step": s,
                        "state": "skipped",
                        "due_date": invoice.due_date,
                        "balance_cents": view.balance_cents,
                        "note": f"Passed over for the reminder of day {step}.",
                    }
                    for s in passed
                ]
            ).on_conflict_ignore().execute()
        row = PaymentReminder.get(
            (PaymentReminder.invoice == invoice.id) & (PaymentReminder.step == step)
        )
        if held:
            audit.record("invoice.reminder_held", invoice, step=step, reason=held)
            return row
        sent_to = _send(invoice, view, today)
        row.sent_to = "\n".join(sent_to)
        if not sent_to:
            row.note = "No billing contact wants payment reminders."
        row.save()
        audit.record("invoice.reminded", invoice, step=step, to=sent_to, skipped=passed)
    return row


def _send(invoice, view, today: date) -> list[str]:
    """Queue the reminder to each billing contact who wants it; returns their addresses."""
    customer = Customer.get_by_id(invoice.customer_id)
    values = {
        "customer_name": customer.name,
        "invoice_number": invoice.number,
        "balance": money(view.balance_cents, invoice.currency),
        "due_date": datefmt(invoice.due_date),
        "when": when(invoice.due_date, today),
        "link": statement_mail.pay_link(invoice),
    }
    return notices.send("payment_reminder", "reminder", customer.id, invoice.site_id, **values)


def history(invoice) -> list[PaymentReminder]:
    """What the schedule did with an invoice, in the schedule's order (one row per step; the
    back office's invoice page)."""
    return list(
        PaymentReminder.select()
        .where(PaymentReminder.invoice == invoice.id)
        .order_by(PaymentReminder.step)
    )


def run_due(today: date | None = None) -> int:
    """One worker pass: the reminder steps due today, at most BATCH invoices; returns how many
    it handled (each step once, whichever worker gets there first)."""
    if not settings.get("payment_reminders"):
        return 0
    today = today or clock.business_today()
    steps = settings.get("reminder_schedule")
    handled = 0
    for invoice, step in due(steps, today):
        try:
            if remind(invoice.id, step, steps, today) is not None:
                handled += 1
        except Exception:  # one invoice's trouble never stops the others' reminders
            log.exception("payment reminder failed for invoice %s", invoice.id)
    return handled
