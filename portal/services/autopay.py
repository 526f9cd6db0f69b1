"""Autopay: a company admin lets the worker pay the company's invoices with a saved card.

The admin chooses a saved card, a maximum per invoice and when to charge (on the due date, N
days before it, or on issue), and accepts the authorisation, whose words are versioned and
whose every acceptance is kept (`AutopayConsent`, like the login terms). From then on
`run_due`, called by `flask worker`, charges each invoice whose charge day has come, once:

- "once" is a database fact: an `AutopayCharge` row per invoice (unique), inserted and
  committed as `charging` before the card is charged. Two workers, or one restarted after a
  crash, find the row and do not charge again. A crash after the row and before the outcome
  leaves a `charging` row that the next pass resolves from the payment attempt (the payments
  core's reconciliation asks Stripe about it), never by charging again blindly;
- the charge goes through the payments core (`payments.checkout` with the saved card,
  off-session), so it is applied exactly like any other payment and the payer (the admin who
  turned autopay on) gets the usual receipt;
- a failed charge is retried with back-off (`BACKOFF`), at most `MAX_TRIES` times, and the
  company's admins are emailed each time; after `DISABLE_AFTER` failures in a row autopay
  turns itself off and tells them;
- an invoice over the maximum is not charged: the admins are told to pay it themselves;
- only invoices whose charge day is on or after the day autopay was turned on are charged:
  turning it on never sweeps up old invoices the company may be disputing (the page says how
  many are already due, to pay by hand).
"""

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from flask import has_request_context
from peewee import fn

from .. import clock, money
from ..db import locked, utcnow, write_txn
from ..models import (
    Autopay,
    AutopayCharge,
    AutopayConsent,
    Customer,
    Invoice,
    PaymentAttempt,
    PaymentAttemptItem,
    PortalUser,
    SavedMethod,
)
from ..web import absolute_url
from . import access, alerts, audit, email_templates, figures, payments, saved_methods

log = logging.getLogger(__name__)

TIMINGS = {
    "due": "on the due date",
    "before": "a number of days before the due date",
    "issue": "as soon as the invoice is issued",
}
MAX_DAYS_BEFORE = 30
MAX_TRIES = 3  # per invoice: the first charge and two retries
BACKOFF = (timedelta(days=1), timedelta(days=3))  # after the first, then the second failure
DISABLE_AFTER = 3  # failed charges in a row
STUCK_AFTER = timedelta(minutes=10)  # a `charging` row with no attempt this old never charged

# The authorisation the admin accepts. Change the words => raise the version: every
# acceptance keeps the version and the exact words it was given.
CONSENT_VERSION = 1
CONSENT = (
    "I authorise {company} to charge {card} for each invoice of {customer} in {currency} of "
    "up to {limit}, {when}, until I or another administrator of {customer} turns autopay off "
    "or removes the card. A receipt is emailed after each charge. A charge that fails is "
    "retried up to {retries} more times and autopay stops after {stop} failures in a row."
)


class AutopayError(Exception):
    """Input to show next to a field of the autopay form."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Terms:
    """What an admin asks for: the card, the limit and when."""

    method: SavedMethod
    max_cents: int
    currency: str
    timing: str
    days_before: int = 0

    @property
    def when(self) -> str:
        if self.timing == "before":
            days = "day" if self.days_before == 1 else "days"
            return f"{self.days_before} {days} before each invoice's due date"
        return TIMINGS[self.timing]


def enabled() -> bool:
    """Autopay charges saved cards: it needs the Stripe provider."""
    return saved_methods.enabled()


def for_customer(customer_id) -> Autopay | None:
    return Autopay.get_or_none(Autopay.customer == customer_id)


def company_name() -> str:
    from . import settings

    return settings.get("company_name")


def plain_amount(cents: int) -> str:
    """An amount as the form shows it back (1250.00), without symbol or separators."""
    return f"{cents // 100}.{cents % 100:02d}"


def last_consent(customer_id) -> AutopayConsent | None:
    """The company's latest acceptance of the autopay authorisation."""
    return (
        AutopayConsent.select()
        .where(AutopayConsent.customer == customer_id)
        .order_by(AutopayConsent.accepted_at.desc(), AutopayConsent.id.desc())
        .first()
    )


def consent_text(customer, terms: Terms) -> str:
    return CONSENT.format(
        company=company_name(),
        card=terms.method.label,
        customer=customer.name,
        currency=terms.currency,
        limit=money.format_cents(terms.max_cents, terms.currency),
        when=terms.when,
        retries=MAX_TRIES - 1,
        stop=DISABLE_AFTER,
    )


def customer_currency(customer_id) -> str:
    """The currency autopay works in: the one most of the customer's invoices use (USD when
    it has none). Invoices in another currency are left to pay by hand."""
    count = fn.COUNT(Invoice.id)
    most = (
        Invoice.select(Invoice.currency, count.alias("n"))
        .where(Invoice.customer == customer_id)
        .group_by(Invoice.currency)
        .order_by(count.desc(), Invoice.currency)
        .first()
    )
    return most.currency if most else "USD"


def charge_day(invoice, autopay) -> date:
    """The day autopay charges this invoice."""
    if autopay.timing == "issue":
        return invoice.issue_date
    if autopay.timing == "before":
        return invoice.due_date - timedelta(days=autopay.days_before)
    return invoice.due_date


def terms_from(customer_id, method_id, max_amount: str, timing: str, days_before: str) -> Terms:
    """Read the form's values; raises AutopayError naming the field."""
    method = saved_methods.method_for(customer_id, method_id)
    if method is None:
        raise AutopayError("method", "Choose one of your saved cards.")
    currency = customer_currency(customer_id)
    try:
        max_cents = money.parse_amount(max_amount or "", currency)
    except ValueError as exc:
        raise AutopayError("max_amount", str(exc) or "Enter an amount.") from None
    if max_cents <= 0:
        raise AutopayError("max_amount", "Enter a maximum greater than zero.")
    if timing not in TIMINGS:
        raise AutopayError("timing", "Choose when to charge.")
    days = 0
    if timing == "before":
        try:
            days = int(str(days_before or "").strip())
        except ValueError:
            days = -1
        if not 1 <= days <= MAX_DAYS_BEFORE:
            raise AutopayError(
                "days_before", f"Enter a number of days from 1 to {MAX_DAYS_BEFORE}."
            )
    return Terms(method, max_cents, currency, timing, days)


def enrol(user, terms: Terms, accepted: bool) -> Autopay:
    """Turn autopay on (or change it) for the user's company, recording the acceptance."""
    if not accepted:
        raise AutopayError("consent", "Tick the box to authorise the charges.")
    customer = user.customer
    text = consent_text(customer, terms)
    now = utcnow()
    values = {
        "method": terms.method.id,
        "max_cents": terms.max_cents,
        "currency": terms.currency,
        "timing": terms.timing,
        "days_before": terms.days_before,
        "active": True,
        "enrolled_by": user.id,
        "enrolled_at": now,
        "failures": 0,
        "stopped_at": None,
        "stopped_reason": "",
        "updated_at": now,
    }
    with write_txn():
        existing = locked(Autopay.select().where(Autopay.customer == customer.id)).first()
        if existing is None:
            Autopay.insert(
                customer=customer.id, starts_on=clock.business_today(), **values
            ).execute()
        else:
            if not existing.active:  # turned on again: from today, not from the first time
                values["starts_on"] = clock.business_today()
            Autopay.update(**values).where(Autopay.id == existing.id).execute()
        AutopayConsent.create(
            customer=customer.id,
            user=user.id,
            version=CONSENT_VERSION,
            text=text,
            accepted_at=now,
            ip=audit.client_ip() if has_request_context() else "",
        )
        autopay = for_customer(customer.id)
        audit.record(
            "autopay.enrolled",
            autopay,
            actor=user,
            card=terms.method.label,
            max_cents=terms.max_cents,
            currency=terms.currency,
            timing=terms.timing,
            days_before=terms.days_before,
            consent_version=CONSENT_VERSION,
        )
    return autopay


def turn_off(user, reason: str = "Turned off by an administrator.") -> None:
    """An admin turns autopay off: nothing more is charged (a charge under way finishes)."""
    with write_txn():
        autopay = locked(Autopay.select().where(Autopay.customer == user.customer.id)).first()
        if autopay is None or not autopay.active:
            return
        Autopay.update(
            active=False, stopped_at=utcnow(), stopped_reason=reason, updated_at=utcnow()
        ).where(Autopay.id == autopay.id).execute()
        audit.record("autopay.turned_off", autopay, actor=user, reason=reason)


def card_removed(method) -> None:
    """A saved card was removed: autopay that used it stops, and the admins are told."""
    autopay = Autopay.get_or_none((Autopay.method == method.id) & (Autopay.active == True))  # noqa: E712
    if autopay is not None:
        _stop(autopay, f"The card it used ({method.label}) was removed.")


def already_due(customer_id, autopay=None) -> list:
    """Open invoices with something to pay whose charge day is before autopay's first day
    (or today, before it is on): autopay leaves these for the customer to pay by hand."""
    first = autopay.starts_on if autopay else clock.business_today()
    query = Invoice.select().where(
        (Invoice.customer == customer_id) & (Invoice.status == "open") & (Invoice.due_expr() > 0)
    )
    return [
        i
        for i in query
        if (charge_day(i, autopay) if autopay else i.due_date) < first
        and figures.payable_view(i).balance_cents > 0
    ]


def will_charge(invoice, amount_cents: int) -> bool:
    """Whether autopay will charge this invoice itself (payment reminders hold off): it is on
    for the invoice's customer and currency, the invoice's charge day is on or after
    autopay's first day, `amount_cents` fits its maximum, and no charge of it ended unpaid."""
    if not enabled():
        return False
    autopay = Autopay.get_or_none(
        (Autopay.customer == invoice.customer_id) & (Autopay.active == True)  # noqa: E712
    )
    if autopay is None or autopay.currency != invoice.currency:
        return False
    if charge_day(invoice, autopay) < autopay.starts_on or amount_cents > autopay.max_cents:
        return False
    charge = AutopayCharge.get_or_none(AutopayCharge.invoice == invoice.id)
    return charge is None or charge.state in ("charging", "processing", "retry")


def enrolments() -> list:
    """Every company with autopay on or stopped, for the back office."""
    return list(
        Autopay.select(Autopay, Customer)
        .join(Customer)
        .order_by(Autopay.active.desc(), Customer.name)
    )


def charges_for(customer_id, limit: int = 20) -> list:
    return list(
        AutopayCharge.select(AutopayCharge, Invoice)
        .join(Invoice)
        .where(AutopayCharge.customer == customer_id)
        .order_by(AutopayCharge.updated_at.desc(), AutopayCharge.id.desc())
        .limit(limit)
    )


# --- the worker's pass --------------------------------------------------------------------


def run_due(now=None, today: date | None = None) -> int:
    """Charge what is due for every company with autopay on; returns how much happened."""
    if not enabled():
        return 0
    now = now or utcnow()
    today = today or clock.business_today()
    done = 0
    for autopay in Autopay.select().where(Autopay.active == True):  # noqa: E712
        try:
            done += _run_one(autopay, now, today)
        except Exception:  # one company's trouble never stops the others' charges
            log.exception("autopay failed for customer %s", autopay.customer_id)
    return done


def _run_one(autopay, now, today) -> int:
    done = _follow_open(autopay, now)
    autopay = Autopay.get_by_id(autopay.id)
    if not autopay.active:
        return done
    method = SavedMethod.get_or_none(SavedMethod.id == autopay.method_id)
    if method is None or not method.active:
        _stop(autopay, "The saved card it used was removed.")
        return done + 1
    for invoice in _due(autopay, today):
        done += _charge(autopay, method, invoice, now, today)
        autopay = Autopay.get_by_id(autopay.id)
        if not autopay.active:
            return done
    retries = AutopayCharge.select().where(
        (AutopayCharge.customer == autopay.customer_id)
        & (AutopayCharge.state == "retry")
        & (AutopayCharge.next_try_at <= now)
    )
    for charge in list(retries):
        done += _charge(autopay, method, charge.invoice, now, today, retry=charge)
        autopay = Autopay.get_by_id(autopay.id)
        if not autopay.active:
            break
    return done


def _due(autopay, today) -> list:
    """Open invoices in autopay's currency whose charge day has come (on or after autopay's
    first day) and that autopay has not touched yet."""
    horizon = today + timedelta(days=autopay.days_before if autopay.timing == "before" else 0)
    day_field = Invoice.issue_date if autopay.timing == "issue" else Invoice.due_date
    touched = AutopayCharge.select(AutopayCharge.invoice).where(
        AutopayCharge.customer == autopay.customer_id
    )
    query = (
        Invoice.select()
        .where(
            (Invoice.customer == autopay.customer_id)
            & (Invoice.status == "open")
            & (Invoice.currency == autopay.currency)
            & (Invoice.due_expr() > 0)
            & (day_field <= horizon)
            & Invoice.id.not_in(touched)
        )
        .order_by(day_field, Invoice.id)
    )
    return [i for i in query if autopay.starts_on <= charge_day(i, autopay) <= today]


def _payer(autopay):
    """Who the receipt goes to: the admin who turned autopay on (else another admin)."""
    user = PortalUser.get_or_none(PortalUser.id == autopay.enrolled_by_id)
    if user is None or user.status != "active":
        admins = access.company_admins(autopay.customer_id)
        user = admins[0] if admins else None
    return user


def _charge(autopay, method, invoice, now, today, retry=None) -> int:
    """Charge one invoice once; the outcome is recorded on its AutopayCharge row."""
    view = figures.payable_view(Invoice.get_by_id(invoice.id))
    amount = money.settle(view, view.balance_cents, today).amount_cents if view.balance_cents else 0
    if amount <= 0:  # paid another way, or a transfer is on its way
        if retry is not None:
            _update(retry, state="settled", next_try_at=None, last_error="Paid another way.")
            return 1
        return 0
    if amount > autopay.max_cents:
        limit = money.format_cents(autopay.max_cents, autopay.currency)
        reason = f"It is over your autopay limit of {limit}, so it was not charged."
        with write_txn():
            claimed = _claim(autopay, invoice, amount, now, retry, state="skipped", error=reason)
            if claimed:
                _tell(autopay, claimed, reason, "Please pay it yourself in the portal.")
        return 1 if claimed else 0
    with write_txn():
        charge = _claim(autopay, invoice, amount, now, retry)
    if charge is None:
        return 0  # another worker has it
    payer = _payer(autopay)
    customer = Customer.get_by_id(autopay.customer_id)
    try:
        result = payments.checkout(
            customer,
            [(view, amount)],
            "stripe",
            payer.display_name if payer else customer.name,
            payer.email if payer else (customer.email or ""),
            portal_user=payer,
            start=saved_methods.SavedStart(method, off_session=True),
        )
    except payments.PaymentError as exc:
        attempt = _attempt_of(charge)
        if attempt is not None and attempt.status not in ("failed", "cancelled", "expired"):
            _update(charge, attempt=attempt.id)  # the provider's answer is still to come
            return 1
        _failed(autopay, charge, exc.message)
        return 1
    _update(charge, attempt=result.attempt.id)
    _follow(autopay, AutopayCharge.get_by_id(charge.id))
    return 1


def _claim(autopay, invoice, amount, now, retry, state="charging", error=""):
    """The row that says this invoice is being charged (inside the caller's transaction);
    None when another worker claimed it first."""
    if retry is None:
        inserted = (
            AutopayCharge.insert(
                customer=autopay.customer_id,
                invoice=invoice.id,
                amount_cents=amount,
                state=state,
                tries=0,
                last_error=error,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_ignore()
            .execute()
        )
        if not inserted:
            return None
        return AutopayCharge.get(AutopayCharge.invoice == invoice.id)
    claimed = (
        AutopayCharge.update(
            state=state, amount_cents=amount, attempt=None, updated_at=now, last_error=error
        )
        .where((AutopayCharge.id == retry.id) & (AutopayCharge.state == "retry"))
        .execute()
    )
    return AutopayCharge.get_by_id(retry.id) if claimed else None


def _update(charge, **values) -> None:
    values.setdefault("updated_at", utcnow())
    with write_txn():
        AutopayCharge.update(**values).where(AutopayCharge.id == charge.id).execute()


def _attempt_of(charge):
    """The payment attempt autopay started for this charge (found by its invoice even when a
    crash kept it from being linked)."""
    if charge.attempt_id:
        return PaymentAttempt.get_by_id(charge.attempt_id)
    return (
        PaymentAttempt.select()
        .join(PaymentAttemptItem)
        .where(
            (PaymentAttemptItem.invoice == charge.invoice_id)
            & (PaymentAttempt.provider == "stripe")
            & (PaymentAttempt.created_at >= charge.updated_at)
        )
        .order_by(PaymentAttempt.id.desc())
        .first()
    )


def _follow_open(autopay, now) -> int:
    """Resolve charges whose outcome was still to come (a bank debit, a webhook, a crash)."""
    done = 0
    open_charges = AutopayCharge.select().where(
        (AutopayCharge.customer == autopay.customer_id)
        & AutopayCharge.state.in_(("charging", "processing"))
    )
    for charge in list(open_charges):
        attempt = _attempt_of(charge)
        if attempt is None:
            if charge.updated_at <= now - STUCK_AFTER:
                # Stopped before any attempt was made: nothing was charged; try again now.
                _update(charge, state="retry", next_try_at=now)
                done += 1
            continue
        if charge.attempt_id is None:
            _update(charge, attempt=attempt.id)
        done += _follow(autopay, AutopayCharge.get_by_id(charge.id))
    return done


def _follow(autopay, charge) -> int:
    """Move a charge on from its attempt's state; 1 when it changed."""
    attempt = PaymentAttempt.get_by_id(charge.attempt_id)
    if attempt.status == "succeeded":
        _update(charge, state="paid", next_try_at=None, last_error="")
        with write_txn():
            Autopay.update(failures=0).where(Autopay.id == autopay.id).execute()
        return 1
    if attempt.status in ("failed", "cancelled", "expired"):
        _failed(autopay, charge, attempt.failure_reason or "The payment did not go through.")
        return 1
    if attempt.status == "processing" and charge.state != "processing":
        _update(charge, state="processing")
        return 1
    return 0


def _failed(autopay, charge, reason: str) -> None:
    """Count a failed charge, schedule its retry, tell the admins; stop after too many."""
    now = utcnow()
    tries = charge.tries + 1
    reason = (reason or "The payment did not go through.")[:255]
    with write_txn():
        autopay = locked(Autopay.select().where(Autopay.id == autopay.id)).get()
        if tries >= MAX_TRIES:
            state, next_try = "failed", None
            after = "We will not try this invoice again: please pay it yourself in the portal."
        else:
            state, next_try = "retry", now + BACKOFF[tries - 1]
            day = next_try.astimezone(clock.business_zone()).date()
            after = f"We will try again on {day.strftime('%d %b %Y')}."
        moved = (
            AutopayCharge.update(
                state=state, tries=tries, next_try_at=next_try, last_error=reason, updated_at=now
            )
            .where(
                (AutopayCharge.id == charge.id)
                & AutopayCharge.state.in_(("charging", "processing"))
            )
            .execute()
        )
        if not moved:
            return  # another pass recorded it
        failures = autopay.failures + 1
        Autopay.update(failures=failures, updated_at=now).where(Autopay.id == autopay.id).execute()
        charge = AutopayCharge.get_by_id(charge.id)
        audit.record("autopay.charge_failed", charge, reason=reason, tries=tries)
        alerts.raise_("payment_problem", charge)
        _tell(autopay, charge, reason, after)
        if failures >= DISABLE_AFTER and autopay.active:
            _stop_locked(autopay, f"{failures} charges failed in a row. The last: {reason}")


def _tell(autopay, charge, reason: str, after: str) -> None:
    """Email the company's admins about a charge that did not happen (in the transaction)."""
    invoice = Invoice.get_by_id(charge.invoice_id)
    method = SavedMethod.get_or_none(SavedMethod.id == autopay.method_id)
    for admin in _admins(autopay):
        email_templates.queue(
            "autopay_failed",
            admin.email,
            name=admin.display_name,
            invoice=invoice.number,
            amount=money.format_cents(charge.amount_cents, invoice.currency),
            card=method.label if method else "your saved card",
            reason=reason,
            next_step=after,
            link=absolute_url("billing.show", invoice_id=invoice.id),
        )


def _admins(autopay) -> list:
    admins = access.company_admins(autopay.customer_id)
    payer = _payer(autopay)
    if payer is not None and payer.id not in {a.id for a in admins}:
        admins.append(payer)
    return admins


def _stop(autopay, reason: str) -> None:
    with write_txn():
        autopay = locked(Autopay.select().where(Autopay.id == autopay.id)).get()
        if autopay.active:
            _stop_locked(autopay, reason)


def _stop_locked(autopay, reason: str) -> None:
    """Turn autopay off and tell the admins (inside the caller's transaction)."""
    Autopay.update(
        active=False, stopped_at=utcnow(), stopped_reason=reason[:255], updated_at=utcnow()
    ).where(Autopay.id == autopay.id).execute()
    audit.record("autopay.stopped", autopay, reason=reason)
    for admin in _admins(autopay):
        email_templates.queue(
            "autopay_stopped",
            admin.email,
            name=admin.display_name,
            reason=reason,
            link=absolute_url("autopay.show"),
        )
    log.info("autopay stopped for customer %s: %s", autopay.customer_id, reason)
