"""Balance, discount and allocation arithmetic: examples plus hypothesis properties."""

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal import money


@dataclass
class Inv:
    total_cents: int
    amount_paid_cents: int = 0
    discount_taken_cents: int = 0
    discount_bp: int = 0
    discount_days: int = 0
    issue_date: date = date(2026, 11, 1)
    status: str = "open"
    id: int = 0

    @property
    def balance_cents(self):
        return self.total_cents - self.amount_paid_cents - self.discount_taken_cents


@pytest.mark.parametrize(
    "text, cents",
    [("1250.00", 125000), ("1,250.5", 125050), ("$0.01", 1), ("7", 700), (" 12.30 ", 1230)],
)
def test_parse_amount_accepts(text, cents):
    assert money.parse_amount(text) == cents


@pytest.mark.parametrize(
    "text", ["-1", "0.001", "1e3", "NaN", "inf", "", "12,34", "1.2.3", "1 000", "0x10", "١٢"]
)
def test_parse_amount_rejects(text):
    """A10: negatives, exponents, NaN and sub-cent fractions never become money."""
    with pytest.raises(money.AmountError):
        money.parse_amount(text)


def test_parse_amount_rejects_absurd_sizes():
    with pytest.raises(money.AmountError):
        money.parse_amount("1" + "0" * 14)


@pytest.mark.parametrize(
    "cents, currency, text",
    [
        (123456, "USD", "$1,234.56"),
        (-5, "USD", "-$0.05"),
        (100, "CAD", "CAD 1.00"),
        (12345678901299, "EUR", "€123,456,789,012.99"),
    ],
)
def test_format_cents(cents, currency, text):
    assert money.format_cents(cents, currency) == text


def test_big_sums_stay_exact():
    """docs/design.md: 12345678901.99 + 0.30 is exact in cents, unlike REAL."""
    assert money.parse_amount("12345678901.99") + money.parse_amount("0.30") == 1234567890229


def test_discount_only_within_the_window():
    inv = Inv(total_cents=100_000, discount_bp=200, discount_days=10)
    assert money.discount_available(inv, date(2026, 11, 11)) == 2_000
    assert money.discount_available(inv, date(2026, 11, 12)) == 0


def test_discount_after_a_partial_payment_is_still_on_the_total():
    """The README rule: an earlier partial payment does not forfeit the discount."""
    inv = Inv(total_cents=100_000, amount_paid_cents=50_000, discount_bp=200, discount_days=10)
    allocation = money.settle(inv, 48_000, date(2026, 11, 5))
    assert (allocation.amount_cents, allocation.discount_cents) == (48_000, 2_000)
    assert allocation.balance_after == 0


def test_partial_payment_earns_no_discount():
    inv = Inv(total_cents=100_000, discount_bp=200, discount_days=10)
    allocation = money.settle(inv, 60_000, date(2026, 11, 5))
    assert (allocation.amount_cents, allocation.discount_cents) == (60_000, 0)


def test_discount_is_taken_once():
    inv = Inv(
        total_cents=100_000,
        discount_taken_cents=2_000,
        amount_paid_cents=0,
        discount_bp=200,
        discount_days=10,
    )
    assert money.discount_available(inv, date(2026, 11, 5)) == 0


def test_allocate_oldest_first_with_discounts():
    old = Inv(total_cents=30_000, id=1)
    new = Inv(total_cents=50_000, discount_bp=200, discount_days=10, id=2)
    allocations, left = money.allocate([old, new], 60_000, date(2026, 11, 5))
    assert [(a.invoice.id, a.amount_cents, a.discount_cents) for a in allocations] == [
        (1, 30_000, 0),
        (2, 30_000, 0),
    ]
    assert left == 0
    allocations, left = money.allocate([old, new], 79_000, date(2026, 11, 5))
    assert [(a.amount_cents, a.discount_cents) for a in allocations] == [
        (30_000, 0),
        (49_000, 1_000),
    ]
    assert left == 0


invoices = st.builds(
    Inv,
    total_cents=st.integers(min_value=1, max_value=10**12),
    discount_bp=st.sampled_from([0, 100, 150, 200, 250, 1000]),
    discount_days=st.integers(min_value=0, max_value=30),
).flatmap(
    lambda inv: st.builds(
        Inv,
        total_cents=st.just(inv.total_cents),
        amount_paid_cents=st.integers(min_value=0, max_value=inv.total_cents),
        discount_bp=st.just(inv.discount_bp),
        discount_days=st.just(inv.discount_days),
    )
)
days = st.integers(min_value=0, max_value=40).map(lambda d: date(2026, 11, 1) + timedelta(days=d))


@given(inv=invoices, amount=st.integers(min_value=1, max_value=10**12), on=days)
def test_settle_never_over_applies(inv, amount, on):
    allocation = money.settle(inv, amount, on)
    assert 0 <= allocation.amount_cents <= amount
    assert allocation.discount_cents >= 0
    assert allocation.balance_after >= 0
    if allocation.discount_cents:
        # A discount is only earned by clearing the whole balance, inside the window.
        assert allocation.balance_after == 0
        assert on <= inv.issue_date + timedelta(days=inv.discount_days)
        assert allocation.discount_cents <= money.percent_of(inv.total_cents, inv.discount_bp)
        assert allocation.amount_cents >= 1


@given(invs=st.lists(invoices, min_size=1, max_size=6), amount=st.integers(1, 10**13), on=days)
def test_allocate_conserves_money_in_order(invs, amount, on):
    allocations, left = money.allocate(invs, amount, on)
    assert left >= 0
    assert sum(a.amount_cents for a in allocations) + left == amount
    for a in allocations:
        assert a.balance_after >= 0
    # Oldest first: every invoice before the last touched one is cleared.
    for a in allocations[:-1]:
        assert a.balance_after == 0
    if left:
        assert all(a.balance_after == 0 for a in allocations)


@given(cents=st.integers(min_value=1, max_value=money.MAX_CENTS))
def test_format_and_parse_round_trip(cents):
    assert money.parse_amount(money.format_cents(cents, "USD")) == cents
