"""Money: exact decimals in, integer minor units inside, never float arithmetic."""

from __future__ import annotations

from decimal import Decimal

# The table, the ceiling and the amount rule are core's, so a client checks exactly what
# the gateway will accept.
from agenitry import CURRENCIES, InvalidAmount, check_amount, currency_exponent


class MoneyError(ValueError):
    """An amount or a currency that cannot be accepted; the message says why."""


def check_currency(currency: str) -> str:
    """Return the upper-case ISO 4217 code, or raise :class:`MoneyError`."""
    code = currency.upper() if isinstance(currency, str) else ""
    if code not in CURRENCIES:
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    return code


def to_minor(amount: Decimal | int, currency: str) -> int:
    """Convert an amount in major units to integer minor units, exactly.

    >>> to_minor(Decimal("127.5"), "USD")
    12750
    """
    try:
        value = check_amount(amount, currency, name="Amount")
    except InvalidAmount as exc:
        raise MoneyError(str(exc)) from None
    return int(value.scaleb(currency_exponent(currency)))


def to_decimal(minor: int, currency: str) -> Decimal:
    """Integer minor units back to an exact Decimal with the currency's places."""
    return Decimal(minor).scaleb(-currency_exponent(currency))


def decimal_string(minor: int, currency: str) -> str:
    """The amount as the decimal string used in canonical entries: "127.50"."""
    return f"{to_decimal(minor, currency):f}"


def to_number(minor: int, currency: str) -> float:
    """The amount as a JSON number for the wire, as the 0.2.0 SDK reads it.

    Exact for every amount of up to 15 significant digits; the canonical entries of the
    audit log carry the exact decimal string whatever the size.
    """
    return float(to_decimal(minor, currency))


def display(minor: int, currency: str) -> str:
    """A person's rendering: "$36,000.00", "JPY 1,200", "EUR 12.50"."""
    exponent = currency_exponent(currency)
    text = f"{to_decimal(minor, currency):,.{exponent}f}"
    return f"${text}" if currency == "USD" else f"{currency} {text}"
