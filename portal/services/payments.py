"""The payments core: attempts, provider hand-off, and applying money to invoices exactly once.

Every payment path (guest quick pay, signed-in billing, staff confirming a cheque) ends in
`apply_event` or `confirm_offline`, which apply money in ONE transaction:

- the Payment row is unique per (provider, provider reference) and per attempt, so a
  replayed callback, a re-delivered webhook or a double click finds the first one (I4, I5);
- each invoice balance moves by a conditional UPDATE that only succeeds while the invoice
  still owes at least that much, so two payers at once can never over-apply (I4);
- when an invoice owes less than planned (two payers at once), what it still owes is applied
  and the rest stays on the payment as unapplied credit, flagged for staff to refund;
- the receipt email goes to the outbox and the audit entry is written in the same
  transaction, so a crash leaves all of it or none of it (I6).

An attempt is recorded with its idempotency key before any provider is called (I2), provider
calls happen outside database transactions, and an invoice has at most one open attempt at a
time: its rows are locked while an attempt starts (I3).

Lock order, everywhere: the invoices (in id order, `_lock_invoices`), then the attempt and its
items, then the payment, and the customer row last (`_figures_changed`). Anything that
changes an attempt takes its invoices first, so two payers can never deadlock (J6).

Contention (issue 15): a newer attempt never cancels an older one whose payer is at the
provider. It asks the provider to end that session and reads back what became of it: only
a session the provider confirms unpaid is cancelled; a paid one is applied; one the provider
cannot answer for means the invoice is being paid right now (IN_PROGRESS). Money that
arrives for an attempt cancelled anyway is applied, or kept as credit (never lost). An offline
payment is recorded in the same transaction that opens its attempt.

Double clicks are recognised by the payer key of the page the form was rendered on
(`page_key`), a signed hidden field, so two clicks of a browser's first payment are one.
"""

import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import current_app, g, has_request_context, session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from peewee import IntegrityError

from .. import clock, money
from ..db import locked, utcnow, write_txn
from ..models import (
    Customer,
    Invoice,
    Payment,
    PaymentApplication,
    PaymentAttempt,
    PaymentAttemptItem,
    ProviderEvent,
    Refund,
)
from . import (
    alerts,
    audit,
    counters,
    email_templates,
    figures,
    providers,
    stripe_provider,  # noqa: F401 (registers the `stripe` provider)
)
from .providers import PROVIDER_LABELS, Event, ProviderError

__all__ = ["PROVIDER_LABELS", "Event", "ProviderError"]

log = logging.getLogger(__name__)

ATTEMPT_LIFETIME = timedelta(hours=2)
IN_PROGRESS = (
    "A payment for this invoice is already in progress. Please wait a moment and try again."
)
# The same offline payment submitted again within this window is a double click.
OFFLINE_REPEAT_WINDOW = timedelta(minutes=10)
OPEN_STATES = ("pending", "redirected")
# Allowed source states per target state (I9). Money that arrives for an attempt that was
# cancelled, expired or declined once on our side is still real money, so it may succeed.
TRANSITIONS = {
    "redirected": {"pending"},
    # A bank debit accepted by the provider and on its way (its Payment is pending).
    "processing": {"pending", "redirected", "cancelled", "expired"},
    "succeeded": {"pending", "redirected", "processing", "cancelled", "expired", "failed"},
    "failed": {"pending", "redirected", "processing"},
    "cancelled": {"pending", "redirected"},
    "expired": {"pending", "redirected"},
    "offline": {"pending"},
    "flagged": {"pending", "redirected", "cancelled", "expired"},
}


class PaymentError(Exception):
    """Input that cannot be paid; `field` names the form field the message belongs next to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Checkout:
    """Where the browser goes next for a started attempt."""

    attempt: PaymentAttempt
    redirect_url: str


@dataclass
class Plan:
    """The validated allocations of one payment and its total."""

    allocations: list = field(default_factory=list)

    @property
    def amount_cents(self) -> int:
        return sum(a.amount_cents for a in self.allocations)

    @property
    def discount_cents(self) -> int:
        return sum(a.discount_cents for a in self.allocations)


def today() -> date:
    """The business date (the business's calendar day, `portal.clock`)."""
    return clock.business_today()


def plan(lines, settings: dict, on: date | None = None) -> Plan:
    """Validate what a payer asked to pay per invoice and work out each discount (A10).

    `lines` is a list of (invoice, amount_cents); an invoice may already be a
    `figures.Payable` (its pending payments fetched), else they are fetched here, so no
    payment is ever planned over money that is already on its way. Raises PaymentError
    for the first problem.
    """
    on = on or today()
    if not lines:
        raise PaymentError("invoices", "Choose at least one invoice to pay.")
    currencies = {inv.currency for inv, _ in lines}
    if len(currencies) > 1:
        raise PaymentError("invoices", "Pay invoices in different currencies separately.")
    bare = [inv.id for inv, _ in lines if not isinstance(inv, figures.Payable)]
    pending = figures.pending_by_invoice(bare) if bare else {}
    result = Plan()
    for invoice, amount in lines:
        if not isinstance(invoice, figures.Payable):
            invoice = figures.Payable(invoice, pending.get(invoice.id, ()))
        if invoice.status == "void":
            raise PaymentError("amount", f"Invoice {invoice.number} is void: nothing is due.")
        if invoice.status != "open" or invoice.due_cents <= 0:
            raise PaymentError("amount", f"Invoice {invoice.number} has nothing left to pay.")
        if invoice.balance_cents <= 0:
            raise PaymentError("amount", covered_message(invoice))
        if not isinstance(amount, int) or amount <= 0:
            raise PaymentError("amount", "Enter an amount greater than zero.")
        allocation = money.settle(invoice, amount, on)
        full = allocation.balance_after == 0
        if amount > invoice.balance_cents or (
            allocation.discount_cents and amount > allocation.amount_cents
        ):
            due = money.format_cents(
                allocation.amount_cents if full else invoice.balance_cents, invoice.currency
            )
            raise PaymentError("amount", f"The most you can pay on {invoice.number} is {due}.")
        if not full:
            if not settings["partial_payments"]:
                raise PaymentError("amount", f"Invoice {invoice.number} must be paid in full.")
            minimum = settings["minimum_partial_cents"]
            if amount < minimum:
                raise PaymentError(
                    "amount",
                    "The smallest partial payment is "
                    + money.format_cents(minimum, invoice.currency)
                    + ".",
                )
        result.allocations.append(allocation)
    return result


def covered_message(payable) -> str:
    """Why an invoice cannot be paid again: its pending payments already cover it."""
    first = payable.pending[0]
    return (
        f"Invoice {payable.number} is already covered by {first.method.lower()} "
        f"{first.receipt_number}, waiting for us to receive it. Cancel that payment first "
        "if you want to pay another way."
    )


# How long a rendered pay form's payer key is honoured.
PAGE_KEY_AGE = timedelta(hours=12)


def _page_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="doorstep.pay-form")


def page_key() -> str:
    """The payer key for a pay form being rendered (a signed hidden field): minted with the
    page, so two clicks of the same form, even a browser's first payment, are one payer."""
    payer = session.setdefault("payer", secrets.token_hex(16))
    return _page_serializer().dumps(payer)


def use_page_key(token: str | None) -> bool:
    """Take the payer key from the submitted form for this request's checkout; False (and
    the session's key is used) when the token is missing, forged or stale."""
    try:
        payer = _page_serializer().loads(token or "", max_age=PAGE_KEY_AGE.total_seconds())
    except (BadSignature, TypeError, ValueError):
        return False
    if not isinstance(payer, str) or not payer:
        return False
    g.payment_owner = payer
    session.setdefault("payer", payer)
    return True


def _owner() -> str:
    """Who is paying, so a double click reuses their attempt but a stranger's never is: the
    key of the page the form came from, else this browser's session."""
    if has_request_context():
        return g.get("payment_owner") or session.setdefault("payer", secrets.token_hex(16))
    return "system"


def _remember(attempt) -> None:
    if has_request_context():
        keys = [k for k in session.get("attempts", []) if k != attempt.key]
        session["attempts"] = (keys + [attempt.key])[-20:]


def checkout(
    customer,
    lines,
    provider,
    payer_name,
    payer_email,
    portal_user=None,
    guest=False,
    settings: dict | None = None,
    start=None,
) -> Checkout:
    """Start paying `lines` [(invoice, cents)] with a provider; returns where to go next.
    `start` replaces the provider's own start (a saved card is charged directly instead of
    opening the provider's page); it may settle the attempt at once."""
    from . import settings as portal_settings

    try:
        chosen = providers.get(provider)
    except KeyError:
        raise PaymentError("provider", "Choose how you want to pay.") from None
    settings = settings or portal_settings.load()
    result = plan(lines, settings)
    for allocation in result.allocations:
        if allocation.invoice.customer_id != customer.id:
            raise PaymentError("invoices", "Those invoices cannot be paid together.")
    attempt = _open_attempt(
        customer, result, chosen.name, payer_name, payer_email, portal_user, guest, settings
    )
    _remember(attempt)
    try:
        url = (start or chosen.start)(attempt)  # outside any transaction: no lock over HTTP
    except ProviderError as exc:
        _transition(attempt.key, "failed", str(exc))
        raise PaymentError("provider", str(exc)) from exc
    except Exception as exc:  # the provider is down or slow: nothing was charged
        log.exception("could not start a %s checkout for attempt %s", chosen.name, attempt.key)
        raise PaymentError(
            "provider",
            "We could not reach the payment provider, and nothing was charged. "
            "Try again in a moment, or choose another way to pay.",
        ) from exc
    if chosen.hosted:
        if PaymentAttempt.get_by_id(attempt.id).status == "pending":
            _transition(attempt.key, "redirected")
        attempt = PaymentAttempt.get_by_id(attempt.id)
        if attempt.status not in OPEN_STATES + ("succeeded", "processing"):
            # Another payer superseded this attempt while its provider session was being
            # made, so that session may have escaped their cancel: cancel it here.
            _provider_cancel(attempt)
            raise PaymentError("invoices", IN_PROGRESS)
    elif attempt.status == "pending":  # an offline attempt is recorded as it opens
        record_offline(attempt)
    return Checkout(attempt, url)


def _fingerprint(provider: str, owner: str, lines) -> str:
    """Identity of a payment request: provider, payer and (invoice, amount, discount) lines."""
    return f"{provider}|{owner}|" + ",".join(sorted(f"{i}:{a}:{d}" for i, a, d in lines))


def _same_payment(attempt, wanted: str) -> bool:
    lines = [(i.invoice_id, i.amount_cents, i.discount_cents) for i in attempt.items]
    return _fingerprint(attempt.provider, attempt.owner, lines) == wanted


def _open_attempt(
    customer, result, provider, payer_name, payer_email, portal_user, guest, settings=None
):
    owner = _owner()
    wanted = _fingerprint(
        provider,
        owner,
        [(a.invoice.id, a.amount_cents, a.discount_cents) for a in result.allocations],
    )
    invoice_ids = [a.invoice.id for a in result.allocations]
    # A concurrent insert of the same open item retries and then reuses; an attempt at the
    # provider is withdrawn there and looked at again.
    for _ in range(4):
        superseded, at_provider = [], []
        try:
            with write_txn():
                _lock_invoices(invoice_ids)
                open_items = list(
                    locked(
                        PaymentAttemptItem.select(PaymentAttemptItem, PaymentAttempt)
                        .join(PaymentAttempt)
                        .where(
                            PaymentAttemptItem.invoice.in_(invoice_ids)
                            & PaymentAttemptItem.is_open.is_null(False)
                        )
                    )
                )
                others = {item.attempt.id: item.attempt for item in open_items}.values()
                for attempt in others:
                    live = attempt.status in OPEN_STATES and attempt.expires_at > utcnow()
                    if live and _same_payment(attempt, wanted):
                        return attempt  # a double click: same payer, same payment
                at_provider = [a for a in others if a.status == "redirected"]
                if at_provider:
                    # Its payer may be paying right now: never cancelled on our word alone.
                    raise _AtProvider
                for attempt in others:
                    # Not yet handed to its payer: the checkout that started it sees this
                    # and cancels its provider session before anyone can pay there.
                    _set_status(attempt, "cancelled", reason="superseded by a newer attempt")
                    superseded.append(attempt)
                now = utcnow()
                if provider == "offline":
                    # An offline attempt is closed at once; a double click finds it here.
                    # Only one still waiting: after a rejection or a cancellation the same
                    # payment started again is a new promise, not a double click.
                    recent = (
                        PaymentAttempt.select()
                        .join(Payment, on=(Payment.attempt == PaymentAttempt.id))
                        .where(
                            (PaymentAttempt.owner == owner)
                            & (PaymentAttempt.provider == provider)
                            & (PaymentAttempt.status == "offline")
                            & (PaymentAttempt.created_at >= now - OFFLINE_REPEAT_WINDOW)
                            & (Payment.status == "pending")
                        )
                    )
                    for attempt in recent:
                        if _same_payment(attempt, wanted):
                            return attempt
                if settings is not None:
                    _replan_under_lock(result, settings)
                attempt = PaymentAttempt.create(
                    key=str(uuid.uuid4()),
                    provider=provider,
                    customer=customer,
                    portal_user=portal_user,
                    guest=guest,
                    payer_name=payer_name,
                    payer_email=payer_email,
                    amount_cents=result.amount_cents,
                    currency=result.allocations[0].invoice.currency,
                    owner=owner,
                    client_ip=audit.client_ip(),
                    created_at=now,
                    updated_at=now,
                    expires_at=now + ATTEMPT_LIFETIME,
                )
                PaymentAttemptItem.insert_many(
                    [
                        {
                            "attempt": attempt.id,
                            "invoice": a.invoice.id,
                            "amount_cents": a.amount_cents,
                            "discount_cents": a.discount_cents,
                            "is_open": True,
                        }
                        for a in result.allocations
                    ]
                ).execute()
                audit.record(
                    "payment.attempt_started",
                    attempt,
                    provider=provider,
                    amount_cents=result.amount_cents,
                    invoices=invoice_ids,
                )
                if provider == "offline":
                    # Recorded in the same transaction: nobody can cancel it in between.
                    _record_offline_locked(attempt)
        except IntegrityError:
            continue
        except _AtProvider:
            for attempt in at_provider:
                event = _withdraw(attempt)
                if event is None:
                    raise PaymentError("invoices", IN_PROGRESS) from None
                apply_event(event)  # cancelled as the provider confirmed, or its money applied
            continue
        for old in superseded:
            _provider_cancel(old)
        return attempt
    raise PaymentError("invoices", IN_PROGRESS)


class _AtProvider(Exception):
    """An open attempt of these invoices has its payer at the provider (rolls back)."""


def _withdraw(attempt) -> Event | None:
    """Ask the provider to end an attempt's session, then what became of it: an Event once
    the provider says it is finished (cancelled, declined or paid), None while it cannot
    say (the payer may be paying right now). Outside any transaction."""
    provider = providers.PROVIDERS.get(attempt.provider)
    if provider is None:
        return None
    try:
        provider.cancel(attempt)
        event = provider.fetch(attempt)
    except Exception:  # the provider is down: nobody can know, so nothing is cancelled
        log.exception("could not withdraw the provider session of attempt %s", attempt.key)
        return None
    if event is None or event.status == "open":
        return None
    return event


def _replan_under_lock(result: Plan, settings: dict) -> None:
    """Check the plan again against the invoices as they are now (locked): a payer who
    raced another one is told the truth (nothing left, or less) instead of paying twice."""
    ids = [a.invoice.id for a in result.allocations]
    fresh = {i.id: i for i in Invoice.select().where(Invoice.id.in_(ids))}
    again = plan(
        [(fresh[a.invoice.id], a.amount_cents) for a in result.allocations],
        dict(settings, minimum_partial_cents=0),
    )
    before = [(a.invoice.id, a.amount_cents, a.discount_cents) for a in result.allocations]
    after = [(a.invoice.id, a.amount_cents, a.discount_cents) for a in again.allocations]
    if before != after:
        raise PaymentError(
            "amount",
            "The invoice changed while you were paying. Look at what is due now and try again.",
        )


def _lock_invoices(invoice_ids) -> None:
    """Serialise work on these invoices (PostgreSQL row locks, in id order; SQLite's
    IMMEDIATE transaction already serialises), so two starts never both see "no open
    attempt" and a start never races an apply. Lock order everywhere: invoices, then attempt.
    """
    list(
        locked(
            Invoice.select(Invoice.id).where(Invoice.id.in_(list(invoice_ids))).order_by(Invoice.id)
        )
    )


def _provider_cancel(attempt) -> None:
    try:
        providers.PROVIDERS[attempt.provider].cancel(attempt)
    except Exception:  # the provider session expires on its own; never block the payer
        log.exception("could not cancel provider session of attempt %s", attempt.key)


def _set_status(attempt, target: str, reason: str = "") -> bool:
    """Move an attempt along the state machine (inside a transaction); False if refused (I9)."""
    if attempt.status == target:
        log.info("attempt %s already %s; nothing to do", attempt.key, target)
        return False
    if attempt.status not in TRANSITIONS[target]:
        log.warning("refused attempt %s transition %s -> %s", attempt.key, attempt.status, target)
        audit.record("payment.transition_refused", attempt, frm=attempt.status, to=target)
        return False
    changed = (
        PaymentAttempt.update(
            status=target,
            updated_at=utcnow(),
            failure_reason=reason[:255] or attempt.failure_reason,
        )
        .where((PaymentAttempt.id == attempt.id) & (PaymentAttempt.status == attempt.status))
        .execute()
    )
    if not changed:
        return False
    if target not in OPEN_STATES:
        PaymentAttemptItem.update(is_open=None).where(
            PaymentAttemptItem.attempt == attempt.id
        ).execute()
    audit.record(f"payment.attempt_{target}", attempt, frm=attempt.status, reason=reason)
    attempt.status = target
    return True


def _lock_invoices_of(key: str) -> None:
    """Lock the invoices of the attempt with this key (the first step of the lock order)."""
    _lock_invoices(
        i.invoice_id
        for i in PaymentAttemptItem.select(PaymentAttemptItem.invoice)
        .join(PaymentAttempt)
        .where(PaymentAttempt.key == key)
    )


def _transition(key: str, target: str, reason: str = "") -> bool:
    with write_txn():
        _lock_invoices_of(key)
        attempt = locked(PaymentAttempt.select().where(PaymentAttempt.key == key)).get()
        return _set_status(attempt, target, reason)


def _new_payment(attempt, provider: str, reference: str, status: str) -> Payment:
    """The Payment of an attempt (inside the caller's transaction), for the attempt's amount
    (a provider reporting another amount never gets here, I10); a pending one remembers
    that amount as what the payer meant to send."""
    return Payment.create(
        receipt_number=counters.next_number("receipt", "R"),
        attempt=attempt,
        provider=provider,
        provider_reference=reference,
        customer=attempt.customer_id,
        amount_cents=attempt.amount_cents,
        intended_cents=attempt.amount_cents if status == "pending" else None,
        currency=attempt.currency,
        unapplied_cents=0,
        status=status,
        payer_name=attempt.payer_name,
        payer_email=attempt.payer_email,
    )


NOT_RECORDED = (
    "Another payment for this invoice was started at the same moment, so yours was not "
    "recorded and you owe nothing for it. Look at what is due now and try again."
)


def record_offline(attempt) -> Payment:
    """An offline promise to pay: a pending Payment staff confirm when the money arrives.
    Raises PaymentError when the attempt is no longer open (another payer's checkout
    cancelled it): nothing is recorded and the payer is told so."""
    with write_txn():
        _lock_invoices_of(attempt.key)
        attempt = locked(PaymentAttempt.select().where(PaymentAttempt.id == attempt.id)).get()
        return _record_offline_locked(attempt)


def _record_offline_locked(attempt) -> Payment:
    """`record_offline` inside the caller's transaction, its invoices and attempt locked."""
    existing = Payment.get_or_none(Payment.attempt == attempt.id)
    if existing:
        return existing
    if attempt.status != "pending":
        log.info("attempt %s is %s: offline payment not recorded", attempt.key, attempt.status)
        raise PaymentError("invoices", NOT_RECORDED)
    payment = _new_payment(attempt, "offline", f"offline:{attempt.key}", "pending")
    _set_status(attempt, "offline")
    _figures_changed(attempt.customer_id)
    _email(payment, attempt, "payment_pending")
    audit.record("payment.offline_recorded", payment, amount_cents=payment.amount_cents)
    alerts.raise_("payment_to_confirm", payment)
    return payment


def _figures_changed(customer_id: int) -> None:
    """Raise the customer's billing version: its pending money or credit changed, which the
    invoice triggers (0010) cannot see. Called last in the transaction, so the customer row
    is locked after the invoices, in the same order as the triggers lock it."""
    Customer.update(billing_version=Customer.billing_version + 1).where(
        Customer.id == customer_id
    ).execute()


def apply_event(event: Event) -> Payment | None:
    """Apply what a provider reported, exactly once; returns the Payment for a success."""
    with write_txn():
        _lock_invoices_of(event.attempt_key)
        attempt = locked(
            PaymentAttempt.select().where(PaymentAttempt.key == event.attempt_key)
        ).get_or_none()
        if attempt is None or attempt.provider != event.provider:
            log.warning("security alert: event for unknown attempt %s", event.attempt_key)
            audit.record(
                "security.alert",
                None,
                reason="event for unknown attempt",
                provider=event.provider,
                reference=event.reference,
            )
            return None
        existing = Payment.get_or_none(
            (Payment.provider == event.provider) & (Payment.provider_reference == event.reference)
        ) or Payment.get_or_none(Payment.attempt == attempt.id)
        if existing is not None and existing.status == "pending" and existing.provider != "offline":
            return _settle_processing(existing, attempt, event)
        if event.status not in ("succeeded", "processing"):
            _set_status(
                attempt,
                "failed" if event.status == "failed" else "cancelled",
                reason=f"provider said {event.status}",
            )
            return None
        if existing is not None:
            log.info("payment %s already recorded; replay ignored", event.reference)
            return existing
        if attempt.status not in TRANSITIONS[event.status]:
            # A flagged attempt waits for staff; money is never applied past that (I9); a
            # debit reported failed stays failed when its "processing" arrives late.
            _set_status(attempt, event.status)  # refused: logged and audited
            return None
        if event.amount_cents != attempt.amount_cents or event.currency != attempt.currency:
            # The provider charged something other than what we asked: never apply it (I8, I10).
            _set_status(attempt, "flagged", reason="amount or currency mismatch")
            log.warning(
                "security alert: attempt %s paid %s %s, expected %s %s",
                attempt.key,
                event.amount_cents,
                event.currency,
                attempt.amount_cents,
                attempt.currency,
            )
            audit.record(
                "security.alert",
                attempt,
                reason="amount mismatch",
                paid=event.amount_cents,
                expected=attempt.amount_cents,
            )
            return None
        if event.status == "processing":
            # A bank debit on its way: pending like a bank transfer until the provider says.
            payment = _new_payment(attempt, event.provider, event.reference, "pending")
            _set_status(attempt, "processing")
            _email(payment, attempt, "payment_pending")
            audit.record("payment.processing", payment, amount_cents=payment.amount_cents)
            _figures_changed(attempt.customer_id)
            return payment
        payment = _new_payment(attempt, event.provider, event.reference, "applied")
        return _applied(payment, attempt)


def _applied(payment, attempt) -> Payment:
    """A provider's money arrived for an attempt (inside the caller's transaction): apply it
    as planned, close the attempt, send the receipt, audit it."""
    _apply_items(payment, list(attempt.items))
    _set_status(attempt, "succeeded")
    _email(payment, attempt, "receipt")
    audit.record(
        "payment.applied",
        payment,
        amount_cents=payment.amount_cents,
        unapplied_cents=payment.unapplied_cents,
    )
    return payment


def _settle_processing(payment, attempt, event: Event) -> Payment | None:
    """A pending bank debit's outcome (inside apply_event's transaction): succeeded applies
    it as planned; failed rejects it and tells the payer; anything else changes nothing."""
    if event.status == "succeeded":
        Payment.update(status="applied", received_at=utcnow()).where(
            Payment.id == payment.id
        ).execute()
        payment.status = "applied"
        _applied(payment, attempt)
        _figures_changed(payment.customer_id)
        return payment
    if event.status == "failed":
        reason = "Your bank did not pay the debit."
        Payment.update(status="rejected", flag_reason=reason).where(
            Payment.id == payment.id
        ).execute()
        payment.status = "rejected"
        _set_status(attempt, "failed", reason="the bank debit failed")
        _tell_not_received(payment, reason)
        audit.record("payment.debit_failed", payment)
        alerts.raise_("payment_problem", payment)
        _figures_changed(payment.customer_id)
        return None
    return payment


def handle_webhook(provider: str, event) -> tuple[int, dict]:
    """What a verified webhook does, once per provider event id: apply an attempt's outcome
    (`Event`), take money back (`stripe_provider.Reversal`), or nothing (None: not ours, or
    a type Doorstep does not act on). Returns the HTTP status and body to answer with: 404
    for an attempt or payment this database does not know (a restored backup, say), so the
    provider keeps retrying instead of being told it was handled."""
    if event is None or getattr(event, "status", "") == "open":
        return 200, {"ok": True, "ignored": True}
    seen = ProviderEvent.select().where(
        (ProviderEvent.provider == provider) & (ProviderEvent.event_id == event.event_id)
    )
    if event.event_id and seen.exists():
        # The same answer as the delivery that applied it, receipt included.
        return 200, {"ok": True, "duplicate": True, "receipt": _receipt_of(event)}
    if isinstance(event, Event):
        if not PaymentAttempt.select().where(PaymentAttempt.key == event.attempt_key).exists():
            log.warning("security alert: %s webhook for unknown attempt", provider)
            audit.record(
                "security.alert", None, reason="webhook for unknown attempt", provider=provider
            )
            return 404, {"error": "unknown attempt"}
        payment = apply_event(event)
    else:
        payment = reverse_from_provider(event)
        if payment is None:
            log.warning("%s webhook for a payment this database does not know", provider)
            return 404, {"error": "unknown payment"}
    if event.event_id:
        with write_txn():
            ProviderEvent.insert(
                provider=provider, event_id=event.event_id, type=type(event).__name__.lower()
            ).on_conflict_ignore().execute()
    return 200, {"ok": True, "receipt": payment.receipt_number if payment else None}


def _receipt_of(event) -> str | None:
    """The receipt number of the payment an already handled attempt event made, if any."""
    if not isinstance(event, Event):
        return None
    payment = (
        Payment.select(Payment.receipt_number)
        .join(PaymentAttempt, on=(Payment.attempt == PaymentAttempt.id))
        .where(PaymentAttempt.key == event.attempt_key)
        .first()
    )
    return payment.receipt_number if payment else None


def _tell_not_received(payment, reason: str) -> None:
    """Email the payer that the money never arrived, and why (inside the transaction)."""
    if payment.payer_email:
        email_templates.queue(
            "payment_rejected",
            payment.payer_email,
            payment=payment,
            items=intended_items(payment),
            reason=reason,
        )


def reverse_from_provider(reversal) -> Payment | None:
    """A refund or dispute made at the provider reached us: take that money back off the
    payment (its credit first, then its newest applications, which reopens those invoices),
    record it, flag the payment for staff and audit it. `reversal.amount_cents` is the total
    taken back so far, so a repeated or late event changes nothing more. None for a payment
    we do not know."""
    this_payment = (Payment.provider == reversal.provider) & (
        Payment.provider_reference == reversal.reference
    )
    with write_txn():
        # Lock order everywhere: invoices, then the payment.
        _lock_invoices(
            a.invoice_id
            for a in PaymentApplication.select(PaymentApplication.invoice)
            .join(Payment)
            .where(this_payment)
        )
        payment = locked(Payment.select().where(this_payment)).get_or_none()
        if payment is None or payment.status != "applied":
            return payment
        applications = list(
            PaymentApplication.select()
            .where(PaymentApplication.payment == payment.id)
            .order_by(PaymentApplication.id.desc())
        )
        done = sum(
            r.amount_cents
            for r in Refund.select().where(
                (Refund.payment == payment.id) & Refund.staff_user.is_null()
            )
        )
        take = min(reversal.amount_cents, payment.amount_cents) - done
        if take <= 0:
            return payment
        from_credit = min(take, payment.unapplied_cents)
        left = take - from_credit
        for application in applications:
            if left <= 0:
                break
            back = min(left, application.amount_cents)
            # The discount was earned by settling in full; money taken back undoes that too.
            Invoice.update(
                amount_paid_cents=Invoice.amount_paid_cents - back,
                discount_taken_cents=Invoice.discount_taken_cents - application.discount_cents,
                updated_at=utcnow(),
            ).where(Invoice.id == application.invoice_id).execute()
            if back == application.amount_cents:
                application.delete_instance()
            else:
                PaymentApplication.update(
                    amount_cents=application.amount_cents - back, discount_cents=0
                ).where(PaymentApplication.id == application.id).execute()
            left -= back
        what = "Refunded" if reversal.kind == "refund" else "Disputed by the payer"
        note = f"{what} at {PROVIDER_LABELS.get(payment.provider, payment.provider)}"
        Refund.create(
            payment=payment, amount_cents=take, reference=reversal.event_id[:100], note=note
        )
        Payment.update(
            unapplied_cents=payment.unapplied_cents - from_credit,
            flagged=True,
            flag_reason=f"{note}: {money.format_cents(take, payment.currency)} taken back; "
            "the invoices it paid are open again for it.",
        ).where(Payment.id == payment.id).execute()
        log.warning("payment %s: %s %s", payment.receipt_number, reversal.kind, take)
        audit.record(
            f"payment.{reversal.kind}_at_provider",
            payment,
            amount_cents=take,
            event=reversal.event_id,
        )
        alerts.raise_("payment_problem", payment)
        _figures_changed(payment.customer_id)
        return Payment.get_by_id(payment.id)


def _apply_items(payment, items, flag_extra: bool = True) -> None:
    """Apply each planned amount by a conditional update; the rest becomes the customer's
    credit, flagged for staff when it came from a race (`flag_extra`: also when the payer
    simply sent more than planned)."""
    unapplied = payment.amount_cents - sum(i.amount_cents for i in items)
    raced = False
    for item in items:
        # The discount planned when the payer started counts even if the provider confirms
        # after midnight of the last day: the payer acted in time.
        amount, discount = item.amount_cents, item.discount_cents
        changed = (
            Invoice.update(
                amount_paid_cents=Invoice.amount_paid_cents + amount,
                discount_taken_cents=Invoice.discount_taken_cents + discount,
                updated_at=utcnow(),
            )
            .where(
                (Invoice.id == item.invoice_id)
                & (Invoice.status == "open")
                & (Invoice.balance_expr() >= amount + discount)
            )
            .execute()
        )
        if changed != 1:
            # Someone else paid this invoice meanwhile: apply what it still owes (without the
            # discount, which was planned on the whole balance) and keep the rest as credit.
            unapplied += amount
            amount, discount = _fit(item.invoice_id, amount), 0
            unapplied -= amount
            raced = True
        if amount or discount:
            PaymentApplication.create(
                payment=payment,
                invoice=item.invoice_id,
                amount_cents=amount,
                discount_cents=discount,
            )
    if unapplied:
        payment.unapplied_cents = unapplied
        payment.flagged = raced or flag_extra
        payment.flag_reason = "More was paid than the invoices owed; refund or apply the credit."
        Payment.update(
            unapplied_cents=unapplied, flagged=payment.flagged, flag_reason=payment.flag_reason
        ).where(Payment.id == payment.id).execute()
        log.warning("payment %s left %s unapplied", payment.receipt_number, unapplied)


def _fit(invoice_id: int, amount: int) -> int:
    """Apply up to `amount` to what an invoice still owes (inside the apply transaction)."""
    invoice = locked(Invoice.select().where(Invoice.id == invoice_id)).get()
    fit = min(amount, invoice.balance_cents) if invoice.status == "open" else 0
    if fit <= 0:
        return 0
    changed = (
        Invoice.update(amount_paid_cents=Invoice.amount_paid_cents + fit, updated_at=utcnow())
        .where((Invoice.id == invoice_id) & (Invoice.balance_expr() >= fit))
        .execute()
    )
    return fit if changed == 1 else 0


def _email(payment, attempt, kind: str) -> None:
    if not payment.payer_email:
        return
    email_templates.queue(
        kind,
        payment.payer_email,
        payment=payment,
        attempt=attempt,
        applications=list(payment.applications),
        items=list(attempt.items) if attempt else [],
    )


def intended_items(payment) -> list:
    """What an offline payer said the payment is for: their invoices and amounts, oldest
    due first (the order money that falls short is applied in)."""
    if not payment.attempt_id:
        return []
    return list(
        PaymentAttemptItem.select(PaymentAttemptItem, Invoice)
        .join(Invoice)
        .where(PaymentAttemptItem.attempt == payment.attempt_id)
        .order_by(Invoice.due_date, Invoice.issue_date, Invoice.id)
    )


def confirm_offline(
    payment, staff, received_cents: int | None = None, received_on: date | None = None
) -> Payment:
    """Staff saw the money arrive: apply a pending offline payment to its invoices.

    `received_cents` is what actually arrived (default: what the payer said). Less than
    intended is applied oldest due first within the intended invoices, each taking at most
    its intended amount (a planned discount only when its invoice gets all it was meant
    to), and the rest stays due; more than intended is kept as the customer's credit.
    """
    today_ = today()
    received_on = received_on or today_
    if received_on > today_:
        raise PaymentError("received_on", "The date cannot be in the future.")
    with write_txn():
        items = intended_items(payment)
        _lock_invoices(i.invoice_id for i in items)
        payment = locked(Payment.select().where(Payment.id == payment.id)).get()
        if payment.status != "pending":
            raise PaymentError("payment", "Only pending payments can be confirmed.")
        received = payment.amount_cents if received_cents is None else received_cents
        if received <= 0:
            raise PaymentError("received_cents", "Enter the amount that arrived.")
        if received > money.MAX_CENTS:
            raise PaymentError("received_cents", "That amount is too large.")
        planned, left = [], received
        for item in items:
            if left >= item.amount_cents:
                planned.append(item)
                left -= item.amount_cents
            elif left > 0:
                planned.append(PaymentAttemptItem(invoice=item.invoice_id, amount_cents=left))
                left = 0
        when = received_on_at(received_on)
        Payment.update(status="applied", amount_cents=received, received_at=when).where(
            Payment.id == payment.id
        ).execute()
        payment.status, payment.amount_cents, payment.received_at = "applied", received, when
        _apply_items(payment, planned, flag_extra=False)
        _email(payment, payment.attempt, "receipt")
        audit.record(
            "payment.offline_confirmed",
            payment,
            actor=staff,
            intended_cents=payment.intended_cents,
            received_cents=received,
            received_on=received_on.isoformat(),
        )
        _figures_changed(payment.customer_id)
        return payment


def received_on_at(day: date):
    """The timestamp a payment received on `day` (a business day) is filed under: the current
    time when it is today, else noon of that day in the business's time zone."""

    if day == today():
        return utcnow()
    return datetime.combine(day, time(12, 0), tzinfo=clock.business_zone())


def reject_offline(payment, staff, reason: str) -> Payment:
    """Staff never received an offline payment: it is rejected, nothing is applied, and the
    payer is told why."""
    with write_txn():
        changed = (
            Payment.update(status="rejected", flag_reason=reason[:255])
            .where((Payment.id == payment.id) & (Payment.status == "pending"))
            .execute()
        )
        if not changed:
            raise PaymentError("payment", "Only pending payments can be rejected.")
        payment = Payment.get_by_id(payment.id)
        _tell_not_received(payment, reason)
        audit.record("payment.offline_rejected", payment, actor=staff, reason=reason)
        _figures_changed(payment.customer_id)
    return payment


def cancel_offline(payment, by) -> Payment:
    """The payer takes back their own offline payment before it arrived (they will pay
    another way, or not at all); nothing was applied, so nothing moves."""
    with write_txn():
        changed = (
            Payment.update(status="cancelled", flag_reason="Cancelled by the payer")
            .where((Payment.id == payment.id) & (Payment.status == "pending"))
            .execute()
        )
        if not changed:
            raise PaymentError(
                "payment", "Only a payment we are still waiting for can be cancelled."
            )
        audit.record("payment.offline_cancelled", payment, actor=by)
        _figures_changed(payment.customer_id)
    return Payment.get_by_id(payment.id)


def may_cancel(payment, user=None) -> bool:
    """True when the viewer made this pending offline payment: the same portal login, or
    for a guest the browser that started it."""
    if payment is None or payment.status != "pending" or not payment.attempt_id:
        return False
    attempt = payment.attempt
    if user is not None and getattr(user, "is_authenticated", False) and not user.is_staff:
        if attempt.portal_user_id == user.id:
            return True
    if has_request_context():
        return attempt.key in session.get("attempts", []) and attempt.owner == session.get("payer")
    return False


def apply_credit(customer, lines, actor, on: date | None = None) -> list:
    """Apply the customer's available credit to open invoices: `lines` is [(invoice,
    cents)]; credit is taken from the oldest payment holding some. One transaction, audited,
    and the company's billing address (or the acting login) is emailed. Returns the new
    PaymentApplications."""
    from . import settings as portal_settings

    on = on or today()
    lines = [(inv, cents) for inv, cents in lines if cents > 0]
    if not lines:
        raise PaymentError("amount", "Choose an invoice and an amount to apply.")
    for invoice, _ in lines:
        if invoice.customer_id != customer.id:
            raise PaymentError("invoices", "That invoice is not this customer's.")
    settings = dict(portal_settings.load(), partial_payments=True, minimum_partial_cents=0)
    with write_txn():
        _lock_invoices(inv.id for inv, _ in lines)
        fresh = {
            i.id: i for i in Invoice.select().where(Invoice.id.in_([inv.id for inv, _ in lines]))
        }
        result = plan([(fresh[inv.id], cents) for inv, cents in lines], settings, on)
        sources = list(locked(figures.credit_payments(customer.id, lines[0][0].currency)))
        available = sum(p.unapplied_cents for p in sources)
        if result.amount_cents > available:
            raise PaymentError(
                "amount",
                "That is more than the credit available ("
                + money.format_cents(available, lines[0][0].currency)
                + ").",
            )
        created = []
        for allocation in result.allocations:
            need, discount = allocation.amount_cents, allocation.discount_cents
            while need > 0:
                source = next(p for p in sources if p.unapplied_cents > 0)
                take = min(need, source.unapplied_cents)
                changed = (
                    Invoice.update(
                        amount_paid_cents=Invoice.amount_paid_cents + take,
                        discount_taken_cents=Invoice.discount_taken_cents + discount,
                        updated_at=utcnow(),
                    )
                    .where(
                        (Invoice.id == allocation.invoice.id)
                        & (Invoice.status == "open")
                        & (Invoice.balance_expr() >= take + discount)
                    )
                    .execute()
                )
                if changed != 1:
                    raise PaymentError("amount", IN_PROGRESS)
                Payment.update(unapplied_cents=Payment.unapplied_cents - take).where(
                    Payment.id == source.id
                ).execute()
                source.unapplied_cents -= take
                created.append(
                    PaymentApplication.create(
                        payment=source,
                        invoice=allocation.invoice.id,
                        amount_cents=take,
                        discount_cents=discount,
                        source="credit",
                    )
                )
                need, discount = need - take, 0
        for source in sources:
            if source.flagged and source.unapplied_cents == 0:
                Payment.update(flagged=False).where(Payment.id == source.id).execute()
        audit.record(
            "payment.credit_applied",
            customer,
            actor=actor,
            amount_cents=result.amount_cents,
            invoices=[a.invoice.number for a in result.allocations],
        )
        if getattr(actor, "is_staff", True):
            to, name = customer.email, customer.name
        else:
            to, name = actor.email, actor.display_name
        if to:
            email_templates.queue(
                "credit_applied", to, customer=customer, applications=created, name=name
            )
        _figures_changed(customer.id)
        return created


def apply_credit_oldest_first(customer, amount_cents: int, actor, on: date | None = None):
    """Staff apply `amount_cents` of a customer's credit to its open invoices, oldest due
    first (each cleared before the next gets anything)."""
    on = on or today()
    invoices = figures.payable_views(
        Invoice.unpaid(Invoice.select().where(Invoice.customer == customer.id))
        .order_by(Invoice.due_date, Invoice.issue_date, Invoice.id)
        .limit(500)
    )
    allocations, left = money.allocate(
        [v for v in invoices if v.balance_cents > 0], amount_cents, on
    )
    if left:
        raise PaymentError(
            "amount",
            "That is "
            + money.format_cents(left)
            + " more than the open invoices owe (less what is pending).",
        )
    return apply_credit(
        customer, [(a.invoice.invoice, a.amount_cents) for a in allocations], actor, on
    )


def record_refund(payment, staff, amount_cents: int, reference: str = "", note: str = ""):
    """Staff gave money back out of a payment's unapplied credit (in the bank, or at the
    provider): the credit shrinks by it. One transaction, audited, the payer emailed."""
    with write_txn():
        payment = locked(Payment.select().where(Payment.id == payment.id)).get()
        if payment.status != "applied" or payment.unapplied_cents <= 0:
            raise PaymentError("amount", "This payment holds no credit to refund.")
        if amount_cents <= 0:
            raise PaymentError("amount", "Enter the amount refunded.")
        if amount_cents > payment.unapplied_cents:
            raise PaymentError(
                "amount",
                "At most "
                + money.format_cents(payment.unapplied_cents, payment.currency)
                + " of this payment is credit.",
            )
        refund = Refund.create(
            payment=payment,
            amount_cents=amount_cents,
            reference=reference[:100],
            note=note,
            staff_user=staff,
        )
        left = payment.unapplied_cents - amount_cents
        Payment.update(unapplied_cents=left, flagged=payment.flagged and left > 0).where(
            Payment.id == payment.id
        ).execute()
        payment.unapplied_cents = left
        audit.record(
            "payment.refunded", payment, actor=staff, amount_cents=amount_cents, reference=reference
        )
        if payment.payer_email:
            email_templates.queue(
                "refund_recorded",
                payment.payer_email,
                payment=payment,
                amount_cents=amount_cents,
                note=note,
            )
        _figures_changed(payment.customer_id)
        return refund


def void_payment(payment, staff, reason: str) -> Payment:
    """Reverse an applied payment: every application is taken back off its invoice."""
    with write_txn():
        payment = locked(Payment.select().where(Payment.id == payment.id)).get()
        if payment.status != "applied":
            raise PaymentError("payment", "Only applied payments can be voided.")
        if Refund.select().where(Refund.payment == payment.id).exists():
            raise PaymentError(
                "payment", "Part of this payment was refunded; reverse it in the books instead."
            )
        for application in payment.applications:
            Invoice.update(
                amount_paid_cents=Invoice.amount_paid_cents - application.amount_cents,
                discount_taken_cents=Invoice.discount_taken_cents - application.discount_cents,
                updated_at=utcnow(),
            ).where(Invoice.id == application.invoice_id).execute()
        PaymentApplication.delete().where(PaymentApplication.payment == payment.id).execute()
        Payment.update(
            status="void",
            voided_at=utcnow(),
            flag_reason=reason[:255],
            unapplied_cents=0,
            flagged=False,
        ).where(Payment.id == payment.id).execute()
        audit.record("payment.voided", payment, actor=staff, reason=reason)
        _figures_changed(payment.customer_id)
    return Payment.get_by_id(payment.id)


def resolve_flag(payment, staff, note: str) -> Payment:
    """Staff dealt with an unapplied credit (refunded it, or applied it in the books)."""
    with write_txn():
        Payment.update(flagged=False, flag_reason=note[:255]).where(
            Payment.id == payment.id
        ).execute()
        audit.record("payment.flag_resolved", payment, actor=staff, note=note)
    return Payment.get_by_id(payment.id)


def reconcile(grace: timedelta = timedelta(minutes=2)) -> int:
    """Ask providers about attempts that never came back (I7); expire the abandoned ones.

    Run by `flask worker`; returns how many attempts changed.
    """
    now = utcnow()
    stale = list(
        PaymentAttempt.select()
        .where(PaymentAttempt.status.in_(OPEN_STATES) & (PaymentAttempt.updated_at <= now - grace))
        .limit(200)
    )
    changed = 0
    for attempt in stale:
        provider = providers.PROVIDERS.get(attempt.provider)
        try:
            event = provider.fetch(attempt) if provider else None
        except Exception:
            log.exception("reconcile: provider %s failed for %s", attempt.provider, attempt.key)
            continue
        if event is not None:
            apply_event(event)
            changed += 1
        elif attempt.expires_at <= now:
            # Expired only once the provider confirms nobody paid; a payment it reports
            # instead is applied (issue 15).
            event = _withdraw(attempt)
            if event is not None and event.status in ("succeeded", "processing"):
                apply_event(event)
                changed += 1
            elif event is not None or attempt.status == "pending":
                changed += _transition(attempt.key, "expired", "nobody finished the checkout")
    return changed


def attempt_for_viewer(key: str, user=None) -> PaymentAttempt | None:
    """An attempt the current browser or the signed-in login started, or one paying at
    least one invoice that a login of the same company may see (the invoices role, and its
    sites when it is limited to some: E2). Anything else is None (a 404)."""
    attempt = PaymentAttempt.get_or_none(PaymentAttempt.key == key)
    if attempt is None:
        return None
    if _started_here(attempt, user):
        return attempt
    if _customer_login(user) and attempt.customer_id == user.contact.customer_id:
        if user.has_role("invoices") and visible_items(attempt, user):
            return attempt
    return None


# Attempts that ended without taking money: the payer may try again with what they typed.
RETRYABLE = ("failed", "cancelled", "expired")


def retry_of(key: str, user=None, guest: bool = False) -> PaymentAttempt | None:
    """A finished attempt that took no money, for the one who started it to try again with
    the payer name, email and amounts it recorded (a guest's attempt from this browser, or
    a signed-in login's own); anything else is None, so nobody reads another's details."""
    if not key or len(key) > 36:
        return None
    attempt = PaymentAttempt.get_or_none(PaymentAttempt.key == key)
    if attempt is None or attempt.status not in RETRYABLE or attempt.guest != guest:
        return None
    if guest:
        started = has_request_context() and key in session.get("attempts", [])
    else:
        started = _customer_login(user) and attempt.portal_user_id == user.id
    return attempt if started else None


def retry_lines(attempt) -> list[tuple[int, int]]:
    """(invoice id, cents) of each invoice the attempt was to pay, in its order."""
    items = attempt.items.order_by(PaymentAttemptItem.id)
    return [(item.invoice_id, item.amount_cents) for item in items]


def _customer_login(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and not user.is_staff


def _started_here(attempt, user) -> bool:
    """This browser started the attempt, or this portal login did."""
    if has_request_context() and attempt.key in session.get("attempts", []):
        return True
    return _customer_login(user) and attempt.portal_user_id == user.id


def visible_items(attempt, user=None) -> list:
    """The attempt's lines the viewer may see: every line for whoever started it and for a
    login of the whole account; a site-limited login sees its sites' invoices only (E2)."""
    items = list(
        PaymentAttemptItem.select(PaymentAttemptItem, Invoice)
        .join(Invoice)
        .where(PaymentAttemptItem.attempt == attempt.id)
        .order_by(Invoice.due_date, Invoice.id)
    )
    if _started_here(attempt, user) or not _customer_login(user) or user.site_ids is None:
        return items
    sites = set(user.site_ids)
    return [item for item in items if item.invoice.site_id in sites]


def lines_for_viewer(attempt, payment, user=None) -> dict:
    """What the status page shows of an attempt: `items` and their `applications` that the
    viewer may see, whether that is the `whole` payment, and `shown_cents`: the payment's
    amount, or for a site-limited login only the sum of its sites' lines (E2)."""
    items = visible_items(attempt, user)
    applications = {a.invoice_id: a for a in payment.applications} if payment else {}
    whole = len(items) == attempt.items.count()
    if whole:
        shown = payment.amount_cents if payment else attempt.amount_cents
    else:
        applications = {
            i.invoice_id: applications[i.invoice_id] for i in items if i.invoice_id in applications
        }
        shown = sum(applications.get(i.invoice_id, i).amount_cents for i in items)
    return {"items": items, "applications": applications, "whole": whole, "shown_cents": shown}
