"""Doorstep cents <-> Stripe's smallest unit: a table from Stripe's currency list, a round trip."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.stripe_units import THREE_DECIMAL, ZERO_DECIMAL, from_stripe, to_stripe


@pytest.mark.parametrize(
    "cents, currency, amount",
    [
        (125000, "USD", 125000),
        (125000, "usd", 125000),
        (1, "EUR", 1),
        (999, "GBP", 999),
        (125000, "JPY", 1250),
        (100, "jpy", 1),
        (0, "KRW", 0),
        (5000000, "VND", 50000),
        (12300, "CLP", 123),
        (125000, "BHD", 1250000),
        (1, "KWD", 10),
        (123456, "jod", 1234560),
        (505, "OMR", 5050),
        (7, "TND", 70),
        (50000, "ISK", 50000),
        (1234, "HUF", 1234),
        (1234, "TWD", 1234),
    ],
)
def test_to_and_from_stripe(cents, currency, amount):
    assert to_stripe(cents, currency) == amount
    assert from_stripe(amount, currency) == cents


@pytest.mark.parametrize(
    "cents, currency", [(125050, "JPY"), (1, "KRW"), (99, "VND"), (150, "ISK"), (101, "XOF")]
)
def test_fractions_of_whole_unit_currencies_are_refused_with_a_message(cents, currency):
    with pytest.raises(ValueError, match=f"{currency} is paid in whole units only"):
        to_stripe(cents, currency)


def test_three_decimal_amounts_from_stripe_must_end_in_zero():
    with pytest.raises(ValueError, match="KWD"):
        from_stripe(1005, "KWD")


@pytest.mark.parametrize("currency", ["", "US", "USDX", "12$", None])
def test_a_malformed_currency_code_is_refused(currency):
    with pytest.raises(ValueError, match="three-letter currency code"):
        to_stripe(100, currency)


def test_the_lists_are_stripes():
    assert {"JPY", "KRW", "VND", "CLP", "XAF", "XOF", "UGX"} <= ZERO_DECIMAL
    assert THREE_DECIMAL == {"BHD", "JOD", "KWD", "OMR", "TND"}
    assert not ZERO_DECIMAL & THREE_DECIMAL


CURRENCIES = ["USD", "EUR", "GBP", "CAD", "JPY", "KRW", "VND", "CLP", "BHD", "KWD", "TND", "ISK"]


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(CURRENCIES))
def test_round_trip(cents, currency):
    try:
        amount = to_stripe(cents, currency)
    except ValueError:
        assert cents % 100 and currency in ZERO_DECIMAL | {"ISK"}
        return
    assert from_stripe(amount, currency) == cents
    if currency in THREE_DECIMAL:
        assert amount % 10 == 0
