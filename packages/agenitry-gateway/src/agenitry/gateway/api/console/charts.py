"""Spend charts as inline SVG, drawn on the server for the console's pages.

What these return is safe to place in a page as it is: every text in it is escaped, and
it holds no script, no link to anything and no style attribute (the console's
Content-Security-Policy refuses inline styles). Colours are presentation attributes, each
with a class (``spent``, ``held``, ``over``, ``limit``, ``track``) the stylesheet may
restyle. Amounts are integer minor units, as :func:`agenitry.gateway.service.spend.spend_summary`
gives them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Optional

from markupsafe import Markup

from agenitry.gateway._money import display

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
SPENT_FILL = "#23408e"
HELD_FILL = "#8fb0ff"
OVER_FILL = "#b91c1c"
TRACK_FILL = "#eef0f4"
LIMIT_STROKE = "#b91c1c"
TEXT_FILL = "#1d2433"
#: At most this many day labels under the bars, so that they never run into each other.
MAX_DAY_LABELS = 8

_GAUGE_WIDTH, _GAUGE_HEIGHT = 320, 56
_BAR_TOP, _BAR_HEIGHT = 20, 14
_BARS_WIDTH, _BARS_HEIGHT = 600, 180
_PLOT_TOP, _PLOT_BOTTOM = 20, 158


def gauge(used: int, held: int, limit: Optional[int], *, label: str, currency: str) -> Markup:
    """A horizontal bar: the amount spent (``used``), the amount held on top of it, and
    the limit as a line; above it their sum against the limit, followed by ``label``
    (the words that end the sentence: "$150.00 of $500.00 today").

    Past the limit, the part of the bar beyond the line is drawn as ``over``; without a
    limit the bar shows only how spent and held split, and the text says "no limit".

    >>> "$150.00 of $500.00 today" in gauge(12000, 3000, 50000, label="today", currency="USD")
    True
    """
    total = used + held
    if limit is None:
        headline = f"{display(total, currency)} {label} · no limit"
        scale = total or 1
    else:
        headline = f"{display(total, currency)} of {display(limit, currency)} {label}"
        if total > limit:
            headline += f" · {display(total - limit, currency)} over"
        scale = max(limit, total, 1)
    detail = f"{display(used, currency)} spent · {display(held, currency)} held"

    def x(minor: int) -> float:
        return _GAUGE_WIDTH * minor / scale

    bar = {"y": _BAR_TOP, "height": _BAR_HEIGHT}
    parts = [
        _tag("title", {}, f"{headline}: {detail}"),
        _text(headline, x=0, y=14),
        _tag("rect", {"class": "track", "x": 0, "width": _GAUGE_WIDTH, "fill": TRACK_FILL, **bar}),
        _tag("rect", {"class": "spent", "x": 0, "width": _number(x(used)), "fill": SPENT_FILL, **bar}),
        _tag("rect", {"class": "held", "x": _number(x(used)), "width": _number(x(held)), "fill": HELD_FILL, **bar}),
    ]
    if limit is not None:
        if total > limit:
            over = {"x": _number(x(limit)), "width": _number(x(total - limit)), "fill": OVER_FILL}
            parts.append(_tag("rect", {"class": "over", **over, **bar}))
        edge = _number(min(x(limit), _GAUGE_WIDTH - 1))
        line = {"x1": edge, "x2": edge, "y1": _BAR_TOP - 3, "y2": _BAR_TOP + _BAR_HEIGHT + 3}
        parts.append(_tag("line", {"class": "limit", **line, "stroke": LIMIT_STROKE, "stroke-width": 2}))
    parts.append(_text(detail, x=0, y=_GAUGE_HEIGHT - 4))
    return _svg(_GAUGE_WIDTH, _GAUGE_HEIGHT, f"{headline}; {detail}", parts, kind="gauge")


def daily_bars(days: Sequence[Mapping[str, Any]], *, currency: str, limit: Optional[int] = None) -> Markup:
    """A bar per day, spent with held stacked on it, oldest first, and the daily limit as a
    dashed line if given. Each bar carries a ``<title>`` (a tooltip without script).

    ``days`` are the ``days`` entries of a spend summary: ``date`` ("2026-01-05"),
    ``spent`` and ``held`` in minor units.
    """
    spent_total = sum(int(day["spent"]) for day in days)
    held_total = sum(int(day["held"]) for day in days)
    if not days:
        return _svg(
            _BARS_WIDTH,
            _BARS_HEIGHT,
            "Spend per day: no days to show",
            [_text("No days to show", x=_BARS_WIDTH / 2, y=_BARS_HEIGHT / 2, anchor="middle")],
            kind="bars",
        )
    peak = max(int(day["spent"]) + int(day["held"]) for day in days)
    scale = max(peak, limit or 0)
    plot = _PLOT_BOTTOM - _PLOT_TOP
    slot = _BARS_WIDTH / len(days)
    width = max(slot * 0.7, 1.0)
    step = math.ceil(len(days) / MAX_DAY_LABELS)

    def height(minor: int) -> float:
        return plot * minor / scale if scale else 0.0

    parts = []
    if scale:
        parts.append(_text(display(scale, currency), x=0, y=12))
    else:
        parts.append(_text(f"Nothing spent or held in these {len(days)} days", x=0, y=12))
    for index, day in enumerate(days):
        spent, held = int(day["spent"]), int(day["held"])
        left = index * slot
        spent_height, held_height = height(spent), height(held)
        bar = {"x": _number(left + (slot - width) / 2), "width": _number(width)}
        tooltip = f"{day['date']}: {display(spent, currency)} spent, {display(held, currency)} held"
        hit = {"x": _number(left), "y": _PLOT_TOP, "width": _number(slot), "height": plot}
        parts.append(
            _tag(
                "g",
                {"class": "day"},
                _tag("title", {}, tooltip),
                # Catches the pointer over the whole slot, so that a day of nothing has a tooltip too.
                _tag("rect", {"class": "slot", **hit, "fill": "#000", "fill-opacity": 0}),
                _tag(
                    "rect",
                    {
                        "class": "spent",
                        **bar,
                        "y": _number(_PLOT_BOTTOM - spent_height),
                        "height": _number(spent_height),
                        "fill": SPENT_FILL,
                    },
                ),
                _tag(
                    "rect",
                    {
                        "class": "held",
                        **bar,
                        "y": _number(_PLOT_BOTTOM - spent_height - held_height),
                        "height": _number(held_height),
                        "fill": HELD_FILL,
                    },
                ),
            )
        )
        if (len(days) - 1 - index) % step == 0:
            # Counted from today, which is always labelled; the edges' labels stay inside.
            centre = left + slot / 2
            anchor = "end" if centre > _BARS_WIDTH - 30 else "start" if centre < 30 else "middle"
            place = _BARS_WIDTH if anchor == "end" else 0 if anchor == "start" else centre
            parts.append(_text(_short_date(str(day["date"])), x=place, y=_BARS_HEIGHT - 6, anchor=anchor))
    described = (
        f"Spend per day, {days[0]['date']} to {days[-1]['date']}: {display(spent_total, currency)} spent,"
        f" {display(held_total, currency)} held"
    )
    if limit is not None:
        level = _PLOT_BOTTOM - height(limit)
        line = {"x1": 0, "x2": _BARS_WIDTH, "y1": _number(level), "y2": _number(level)}
        parts.append(
            _tag(
                "line", {"class": "limit", **line, "stroke": LIMIT_STROKE, "stroke-width": 2, "stroke-dasharray": "6 4"}
            )
        )
        caption = f"daily limit {display(limit, currency)}"
        parts.append(_text(caption, x=_BARS_WIDTH, y=max(level - 4, 12), anchor="end"))
        described += f"; {caption}"
    return _svg(_BARS_WIDTH, _BARS_HEIGHT, described, parts, kind="bars")


def _svg(width: int, height: int, described: str, parts: list[Markup], *, kind: str) -> Markup:
    attributes = {
        "xmlns": SVG_NAMESPACE,
        "class": f"chart {kind}",
        "viewBox": f"0 0 {width} {height}",
        "width": width,
        "height": height,
        "role": "img",
        "aria-label": described,
    }
    return _tag("svg", attributes, *parts)


def _text(content: str, *, x: float, y: float, anchor: str = "start") -> Markup:
    return _tag("text", {"x": _number(x), "y": _number(y), "text-anchor": anchor, "fill": TEXT_FILL}, content)


def _tag(name: str, attributes: Mapping[str, Any], *children: str) -> Markup:
    """An element; attribute values and any child that is not already markup are escaped."""
    opened = Markup("<{}").format(name) + Markup("").join(
        Markup(' {}="{}"').format(key, value) for key, value in attributes.items()
    )
    if not children:
        return opened + Markup("/>")
    return (
        opened
        + Markup(">")
        + Markup("").join(Markup.escape(child) for child in children)
        + Markup("</{}>").format(name)
    )


def _number(value: float) -> str:
    """A coordinate with one decimal, without a trailing ".0"."""
    return f"{value:.1f}".removesuffix(".0")


def _short_date(day: str) -> str:
    """ "2026-01-05" as "Jan 5"; any other text as it is."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return day
    return f"{parsed:%b} {parsed.day}"
