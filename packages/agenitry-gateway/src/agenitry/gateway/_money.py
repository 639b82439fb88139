"""Money: exact decimals in, integer minor units inside, never float arithmetic."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: The most a single amount may be, in major units.
MAX_AMOUNT = Decimal(10) ** 12

# ISO 4217 codes whose minor unit is not two digits; every other active code uses two.
_EXPONENTS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
_TWO_DIGIT = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR
    KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK
    SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN
    UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL""".split()
)
CURRENCIES: frozenset[str] = _TWO_DIGIT | frozenset(_EXPONENTS)


class MoneyError(ValueError):
    """An amount or a currency that cannot be accepted; the message says why."""


def currency_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (USD 2, JPY 0, KWD 3)."""
    return _EXPONENTS.get(currency, 2)


def check_currency(currency: str) -> str:
    """Return the upper-case ISO 4217 code, or raise :class:`MoneyError`."""
    code = currency.upper() if isinstance(currency, str) else ""
    if code not in CURRENCIES:
        raise MoneyError(f"{currency!r} is not an ISO 4217 currency code")
    return code


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """Convert an amount in major units to integer minor units, exactly.

    >>> to_minor(Decimal("127.5"), "USD")
    12750
    """
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError("Amount must be a finite number")
    if value < 0:
        raise MoneyError("Amount must not be negative")
    if value > MAX_AMOUNT:
        raise MoneyError("Amount must not exceed 1,000,000,000,000")
    exponent = currency_exponent(currency)
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        places = "no decimal places" if exponent == 0 else f"at most {exponent} decimal places"
        raise MoneyError(f"{currency} amounts have {places}; got {value}")
    return int(minor)


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
