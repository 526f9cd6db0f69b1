"""All money arithmetic: parsing, formatting, balances, early-payment discounts, allocation.

Amounts are integer minor units (cents) everywhere inside Doorstep; `Decimal` only at the
edges (forms, CSV). Nothing here touches a float.

Discount rule: an invoice with terms `discount_bp` / `discount_days` offers that percentage
of its *total*, but only on a payment that settles the whole remaining balance on or before
`issue_date + discount_days`. Earlier partial payments do not forfeit it; the discount is
capped so that at least one cent is still paid.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_AMOUNT = re.compile(r"^\d{1,3}(,\d{3})*(\.\d{1,2})?$|^\d+(\.\d{1,2})?$", re.ASCII)
MAX_CENTS = 10**15  # a hard ceiling far above any real invoice, below BIGINT limits


class AmountError(ValueError):
    """A typed amount that is not a positive sum of money with at most two decimals."""


class QuantityError(ValueError):
    """A typed quantity that is not a number with at most three decimals."""


def parse_quantity(text: str, zero: bool = False) -> int:
    """`"2.5"` -> 2500 thousandths; positive (or zero when `zero`), at most three decimals."""
    try:
        value = Decimal((text or "").strip().replace(",", ""))
    except InvalidOperation as exc:
        raise QuantityError("Enter a quantity like 2 or 2.5.") from exc
    if not value.is_finite() or value < 0 or (value == 0 and not zero):
        raise QuantityError("Enter a quantity like 2 or 2.5.")
    if value != value.quantize(Decimal("0.001")):
        raise QuantityError("Enter a quantity like 2 or 2.5.")
    if value > 10**9:
        raise QuantityError("That quantity is too large.")
    return int(value * 1000)


CURRENCY_NAMES = {"USD": "US dollars", "EUR": "euros", "GBP": "pounds sterling"}
# What may stand before or after the number: a symbol or a currency code.
_MARKED = re.compile(r"^(?P<pre>[^\d.,\s-]*)\s*(?P<number>.*?)\s*(?P<post>[^\d.,\s]*)$", re.S)


def _currency_of(mark: str) -> str | None:
    """The currency a typed symbol or code names ("€", "eur" -> "EUR"), or None."""
    for code, symbol in SYMBOLS.items():
        if mark == symbol or mark.upper() == code:
            return code
    return None


def _looks_like_currency(mark: str) -> bool:
    return any(unicodedata.category(c) == "Sc" for c in mark) or (
        len(mark) == 3 and mark.isascii() and mark.isalpha()
    )


def parse_amount(text: str, currency: str | None = None) -> int:
    """`"1,234.50"` -> 123450; rejects negatives, exponents, NaN and sub-cent fractions.

    A symbol or code before or after the number must be `currency`'s own (`$10` on a USD
    invoice); another currency's is refused with a message saying so, never ignored (A10).
    Without `currency`, any symbol of `SYMBOLS` passes (staff and import amounts).
    """
    raw = (text or "").strip()
    parts = _MARKED.match(raw)
    marks = [m for m in (parts.group("pre"), parts.group("post")) if m] if parts else []
    if len(marks) > 1 or (marks and not parts.group("number")):
        raise AmountError("Enter an amount like 1250.00")
    if marks:
        named = _currency_of(marks[0])
        if currency is not None and named != currency and (named or _looks_like_currency(marks[0])):
            raise AmountError(
                f"This invoice is in {CURRENCY_NAMES.get(currency, currency)}: "
                f"enter the amount in {currency}, without {marks[0]}."
            )
        if named is None:
            raise AmountError("Enter an amount like 1250.00")
        raw = parts.group("number")
    if not _AMOUNT.match(raw):
        raise AmountError("Enter an amount like 1250.00")
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise AmountError("Enter an amount like 1250.00") from exc
    cents = int(value * 100)
    if cents > MAX_CENTS:
        raise AmountError("That amount is too large")
    return cents


def to_decimal(cents: int) -> Decimal:
    """Cents to a two-place Decimal, for CSV and form defaults."""
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def from_decimal(value: Decimal | str) -> int:
    """A Decimal (or decimal string) to cents, rounding half up to the cent."""
    return int((Decimal(value) * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def format_cents(cents: int, currency: str = "USD") -> str:
    """`-123456, "USD"` -> `-$1,234.56`; unknown currencies show their code."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    number = f"{whole:,}.{part:02d}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{currency} {number}"


def percent_of(cents: int, basis_points: int) -> int:
    """`basis_points`/10000 of an amount, rounded half up to the cent."""
    return int((Decimal(cents) * basis_points / 10000).quantize(Decimal("1"), ROUND_HALF_UP))


def discount_deadline(invoice) -> date | None:
    """The last day the early-payment discount can be earned, or None without terms."""
    if not invoice.discount_bp or invoice.discount_days < 0:
        return None
    return invoice.issue_date + timedelta(days=invoice.discount_days)


def discount_available(invoice, on: date) -> int:
    """The discount (cents) a payment settling the whole balance on `on` would earn."""
    deadline = discount_deadline(invoice)
    balance = invoice.balance_cents
    if deadline is None or on > deadline or invoice.discount_taken_cents or balance <= 1:
        return 0
    if invoice.status != "open":
        return 0
    return min(percent_of(invoice.total_cents, invoice.discount_bp), balance - 1)


@dataclass(frozen=True)
class Allocation:
    """What one payment does to one invoice: cash applied and discount earned."""

    invoice: object
    amount_cents: int
    discount_cents: int

    @property
    def balance_after(self) -> int:
        return self.invoice.balance_cents - self.amount_cents - self.discount_cents


def settle(invoice, amount_cents: int, on: date) -> Allocation:
    """Apply `amount_cents` to one invoice: the discount is earned only if it clears the balance."""
    discount = discount_available(invoice, on)
    due_with_discount = invoice.balance_cents - discount
    if discount and amount_cents >= due_with_discount:
        return Allocation(invoice, due_with_discount, discount)
    return Allocation(invoice, min(amount_cents, invoice.balance_cents), 0)


def allocate(invoices, amount_cents: int, on: date) -> tuple[list[Allocation], int]:
    """Spread one amount over invoices in the order given (oldest due first, by the caller).

    Each invoice takes what clears it (its discounted balance when the discount is still
    open) until the money runs out. Returns the allocations and the cents left over.
    """
    remaining = amount_cents
    result = []
    for invoice in invoices:
        if remaining <= 0:
            break
        if invoice.balance_cents <= 0:
            continue
        allocation = settle(invoice, remaining, on)
        if allocation.amount_cents <= 0:
            continue
        result.append(allocation)
        remaining -= allocation.amount_cents
    return result, remaining
