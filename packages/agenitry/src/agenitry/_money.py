"""The amount rule, written once: what the gateway accepts as money, checked before asking it.

The gateway (``agenitry.gateway._money``) takes its currency table, its ceiling and this
check from here, so a client never sends an amount the gateway would refuse, and an
adapter never coerces what a model wrote (``true``, ``"450"``) into money.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Callable, Optional, Union

#: The most a single amount may be, in major units.
MAX_AMOUNT = Decimal(10) ** 12

# ISO 4217 codes whose minor unit is not two digits; every other active code uses two.
_OTHER_EXPONENTS = {
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
_TWO_DIGIT = """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB
    EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR
    KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK
    SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN
    UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL""".split()

#: Every ISO 4217 code the gateway accepts → the decimal places of its minor unit.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType({**dict.fromkeys(_TWO_DIGIT, 2), **_OTHER_EXPONENTS})
CURRENCIES: frozenset[str] = frozenset(CURRENCY_EXPONENTS)
# Without a known currency the venue's applies, which the client does not know: allow the
# most places any currency has and let the gateway decide the rest.
_MOST_PLACES = max(CURRENCY_EXPONENTS.values())


class InvalidAmount(ValueError):
    """An amount the gateway would refuse; the message is a sentence a model can act on."""


def currency_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (USD 2, JPY 0, KWD 3).

    >>> currency_exponent("JPY"), currency_exponent("usd"), currency_exponent("KWD")
    (0, 2, 3)
    """
    return CURRENCY_EXPONENTS.get(currency.upper(), 2)


def _described(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a {type(value).__name__}"


def check_amount(value: Any, currency: Optional[str] = None, *, name: str = "amount") -> Decimal:
    """``value`` as an exact Decimal if the gateway would accept it as an amount, else :class:`InvalidAmount`.

    Only a number is an amount (an int or a float as JSON decodes them, or a Decimal), never
    a bool, a string or None; it must be finite, at least 0, at most 10^12, with no more
    decimal places than ``currency`` has (unknown or None: the most any currency has).

    >>> check_amount(127.5)
    Decimal('127.5')
    >>> check_amount("450")
    Traceback (most recent call last):
    ...
    agenitry._money.InvalidAmount: amount must be a JSON number such as 127.5, not the string '450'
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise InvalidAmount(f"{name} must be a JSON number such as 127.5, not {_described(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidAmount(f"{name} must be a finite number, not {value}")
    try:
        # repr: the shortest text that reads back as this float, so 1.005 stays 1.005.
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise InvalidAmount(f"{name} must be a number, not {value!r}") from None
    if not amount.is_finite():
        raise InvalidAmount(f"{name} must be a finite number, not {value}")
    if amount < 0:
        raise InvalidAmount(f"{name} must not be negative, got {value}")
    if amount > MAX_AMOUNT:
        raise InvalidAmount(f"{name} must not exceed 1,000,000,000,000, got {value}")
    code = currency.upper() if isinstance(currency, str) else ""
    places = CURRENCY_EXPONENTS.get(code, _MOST_PLACES)
    minor = amount.scaleb(places)
    if minor != minor.to_integral_value():
        allowed = "no decimal places" if places == 0 else f"at most {places} decimal places"
        whose = f"{code} amounts have" if code in CURRENCY_EXPONENTS else "an amount has"
        raise InvalidAmount(f"{whose} {allowed}; got {value}")
    return amount


#: Where a tool's amount comes from: an argument's name, a function of the arguments, or a number.
AmountSpec = Union[str, float, int, Callable[[dict[str, Any]], Any]]


def resolve_amount(
    spec: Optional[AmountSpec], arguments: Mapping[str, Any], tool: str = "the tool", currency: Optional[str] = None
) -> Decimal:
    """The amount a call spends, checked by :func:`check_amount`: a named argument, a function
    of the arguments, or a number.

    >>> resolve_amount("total", {"total": 42.5})
    Decimal('42.5')
    """
    if callable(spec):
        value = spec(dict(arguments))
    elif isinstance(spec, str):
        if spec not in arguments:
            raise InvalidAmount(f"{tool} was called without its amount argument {spec!r}")
        value = arguments[spec]
    else:
        value = spec
    return check_amount(value, currency, name=spec if isinstance(spec, str) else "amount")
