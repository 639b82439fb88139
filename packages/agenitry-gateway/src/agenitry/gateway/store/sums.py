"""Exact sums of money columns, whatever their total, on SQLite and PostgreSQL.

SQLite's ``SUM`` fails with "integer overflow" past 2^63 (a thousand 10^12 JPY events
do it), and its ``total()`` is a float. So each amount (0 <= a < 2^63, as the columns are
64-bit and no amount is negative) is split into its high and low 32 bits, which the
database sums apart: fewer than 2^31 rows cannot overflow either part. Python then
joins the two parts in an integer of any size. PostgreSQL sums the same two columns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column
from sqlalchemy.sql.elements import ColumnElement

_LOW_BITS = 32
_LOW_MASK = (1 << _LOW_BITS) - 1


#: :func:`split_sum` in plain SQL, of the column or expression ``{column}``.
SPLIT_SUM = f"coalesce(sum({{column}} >> {_LOW_BITS}), 0) AS high, coalesce(sum({{column}} & {_LOW_MASK}), 0) AS low"


def split_sum(amount: ColumnElement[Any]) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The two parts of ``SUM(amount)`` (0 when no row), to be joined by :func:`joined`."""
    # Written into the SQL: PostgreSQL has no ``bigint >> bigint``, which a bound 32 would be.
    high = func.coalesce(func.sum(amount.bitwise_rshift(literal_column(str(_LOW_BITS)))), 0).label("high")
    low = func.coalesce(func.sum(amount.bitwise_and(literal_column(str(_LOW_MASK)))), 0).label("low")
    return high, low


def joined(high: Any, low: Any) -> int:
    """The exact sum from its two parts (PostgreSQL gives them as decimals)."""
    return (int(high) << _LOW_BITS) + int(low)
