"""Doorstep cents <-> Stripe's smallest currency unit, for every currency an invoice can use.

Doorstep keeps every amount in hundredths of the currency's unit ("cents"), whatever the
currency's real exponent: its CSV importer reads "1250.00" as 125000 in JPY as in USD.
Stripe wants the currency's smallest unit (https://docs.stripe.com/currencies):

- zero-decimal currencies take whole units, so a Doorstep amount must be whole units;
- three-decimal currencies take thousandths, and Stripe requires the last digit to be 0;
- ISK stays two-decimal in Stripe's API but only whole kronur are accepted (a multiple
  of 100), since card networks dropped fractional ISK in 2023;
- every other currency takes cents as they are.
"""

# Stripe's published zero-decimal list.
ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Two-decimal in the API, but only whole units are accepted.
WHOLE_UNITS_ONLY = frozenset({"ISK"})


def _code(currency: str) -> str:
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"{currency!r} is not a three-letter currency code.")
    return code


def _whole(cents: int, code: str) -> None:
    if cents % 100:
        raise ValueError(
            f"{code} is paid in whole units only: {cents / 100:.2f} {code} has a fraction "
            "Stripe cannot charge."
        )


def to_stripe(cents: int, currency: str) -> int:
    """Doorstep cents -> the amount Stripe's API takes for `currency`."""
    code = _code(currency)
    if code in ZERO_DECIMAL:
        _whole(cents, code)
        return cents // 100
    if code in THREE_DECIMAL:
        return cents * 10
    if code in WHOLE_UNITS_ONLY:
        _whole(cents, code)
    return cents


def from_stripe(amount: int, currency: str) -> int:
    """An amount from Stripe's API for `currency` -> Doorstep cents."""
    code = _code(currency)
    if code in ZERO_DECIMAL:
        return amount * 100
    if code in THREE_DECIMAL:
        if amount % 10:
            raise ValueError(f"{amount} thousandths of {code} is not a whole number of hundredths.")
        return amount // 10
    return amount
