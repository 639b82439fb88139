"""The console's spend charts (api/console/charts.py): inline SVG a strict page can hold.

Pins down: well-formed XML for every shape of input (nothing, far above the limit, no
limit, 1 to 90 days); every text escaped, however hostile; nothing a strict
Content-Security-Policy would block or a page would fetch (no script, no style attribute,
no link, no event handler); a tooltip per bar and an accessible name; what the gauge says.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Optional

import pytest
from markupsafe import Markup

from agenitry.gateway.api.console.charts import MAX_DAY_LABELS, daily_bars, gauge

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a & b ' \" < >"]


def parsed(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))  # noqa: S314 - the gateway's own output, parsed to prove it well-formed
    assert root.tag == f"{SVG}svg"
    for element in root.iter():
        name = element.tag.removeprefix(SVG)
        assert name in {"svg", "g", "title", "text", "rect", "line"}, name
        for attribute in element.attrib:
            assert attribute != "style" and not attribute.startswith("on") and "href" not in attribute, attribute
    assert "url(" not in str(markup)
    return root


def days(amounts: list[tuple[int, int]], label: Optional[str] = None) -> list[dict[str, Any]]:
    return [
        {"date": label or f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}", "spent": spent, "held": held}
        for n, (spent, held) in enumerate(amounts)
    ]


def inside(root: ET.Element) -> None:
    """Every shape lies within the picture, with sizes that are numbers and not negative."""
    width, height = (float(value) for value in root.attrib["viewBox"].split()[2:])
    for rect in root.iter(f"{SVG}rect"):
        x, y, w, h = (float(rect.attrib[name]) for name in ("x", "y", "width", "height"))
        assert w >= 0 and h >= 0, rect.attrib
        assert min(x, y) >= 0 and x + w <= width + 0.1 and y + h <= height + 0.1, rect.attrib
    for line in root.iter(f"{SVG}line"):
        assert all(0 <= float(line.attrib[name]) <= width for name in ("x1", "x2")), line.attrib
        assert all(0 <= float(line.attrib[name]) <= height for name in ("y1", "y2")), line.attrib


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter() if element.tag in (f"{SVG}text", f"{SVG}title")]


@pytest.mark.parametrize(
    ("used", "held", "limit", "says"),
    [
        (12000, 0, 50000, "$120.00 of $500.00 today"),
        (12000, 3000, 50000, "$150.00 of $500.00 today"),
        (0, 0, 50000, "$0.00 of $500.00 today"),
        (0, 0, None, "$0.00 today · no limit"),
        (7000, 500, None, "$75.00 today · no limit"),
        (10**14, 10**13, 100, "$1,100,000,000,000.00 of $1.00 today · $1,099,999,999,999.00 over"),
        (0, 0, 0, "$0.00 of $0.00 today"),
        (5, 0, 0, "$0.05 of $0.00 today · $0.05 over"),
    ],
)
def test_the_gauge_says_where_spend_stands(used: int, held: int, limit: Optional[int], says: str) -> None:
    root = parsed(gauge(used, held, limit, label="today", currency="USD"))
    inside(root)
    assert says in texts(root)
    assert root.attrib["role"] == "img"
    assert says in root.attrib["aria-label"]
    classes = [element.attrib.get("class") for element in root.iter()]
    assert ("limit" in classes) is (limit is not None)
    assert ("over" in classes) is (limit is not None and used + held > limit)


def test_the_gauge_draws_spent_then_held_against_the_limit() -> None:
    root = parsed(gauge(10000, 5000, 50000, label="today", currency="USD"))
    rects = {rect.attrib["class"]: rect.attrib for rect in root.iter(f"{SVG}rect")}
    [line] = root.iter(f"{SVG}line")
    spent, held = float(rects["spent"]["width"]), float(rects["held"]["width"])
    assert float(rects["held"]["x"]) == spent
    assert held == spent / 2
    assert float(line.attrib["x1"]) == pytest.approx(spent * 5, abs=1)
    assert "$100.00 spent · $50.00 held" in texts(root)


def test_a_gauge_in_another_currency() -> None:
    assert "JPY 1,200 of JPY 5,000 this month" in texts(
        parsed(gauge(1200, 0, 5000, label="this month", currency="JPY"))
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_text_of_a_gauge_is_escaped(hostile: str) -> None:
    markup = gauge(100, 0, 200, label=hostile, currency="USD")
    root = parsed(markup)
    assert "<script" not in str(markup) and "<img" not in str(markup)
    assert any(hostile in text for text in texts(root))
    assert hostile in root.attrib["aria-label"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_text_of_the_bars_is_escaped(hostile: str) -> None:
    markup = daily_bars(days([(100, 0), (0, 50)], label=hostile), currency="USD", limit=100)
    root = parsed(markup)
    assert "<script" not in str(markup) and "<img" not in str(markup)
    assert any(hostile in text for text in texts(root))
    assert hostile in root.attrib["aria-label"]


@pytest.mark.parametrize("count", [1, 2, 7, 30, 31, 90])
def test_a_bar_a_day_with_a_tooltip_and_few_enough_labels(count: int) -> None:
    history = days([(n * 1000, 500) for n in range(count)])
    root = parsed(daily_bars(history, currency="USD", limit=20_000))
    inside(root)
    bars = [group for group in root.iter(f"{SVG}g") if group.attrib.get("class") == "day"]
    assert len(bars) == count
    for bar, day in zip(bars, history):
        title = bar.find(f"{SVG}title")
        assert title is not None and title.text is not None
        assert title.text.startswith(f"{day['date']}: ")
        assert f"${day['spent'] / 100:,.2f} spent, $5.00 held" in title.text
    labels = [text.text for text in root.iter(f"{SVG}text") if text.text and text.text[:3].isalpha()]
    day_labels = [label for label in labels if not label.startswith("daily limit")]
    assert 1 <= len(day_labels) <= MAX_DAY_LABELS
    assert day_labels[-1] == _short(history[-1]["date"])  # today always has its label
    assert root.attrib["aria-label"].startswith(f"Spend per day, {history[0]['date']} to {history[-1]['date']}")
    assert "daily limit $200.00" in root.attrib["aria-label"]


def _short(day: str) -> str:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{months[int(day[5:7]) - 1]} {int(day[8:])}"


def test_bars_stack_held_on_spent_and_the_limit_sits_at_its_height() -> None:
    root = parsed(daily_bars(days([(6000, 2000), (2000, 0)]), currency="USD", limit=10_000))
    first = next(group for group in root.iter(f"{SVG}g") if group.attrib.get("class") == "day")
    rects = {rect.attrib["class"]: rect.attrib for rect in first.iter(f"{SVG}rect")}
    spent_top = float(rects["spent"]["y"])
    assert float(rects["held"]["y"]) + float(rects["held"]["height"]) == pytest.approx(spent_top, abs=0.1)
    assert float(rects["spent"]["height"]) == pytest.approx(3 * float(rects["held"]["height"]), abs=0.2)
    [line] = root.iter(f"{SVG}line")
    bottom = spent_top + float(rects["spent"]["height"])
    # The limit ($100) is the tallest thing, above the $80 day by a fifth of its height.
    assert bottom - float(line.attrib["y1"]) == pytest.approx((bottom - float(rects["held"]["y"])) * 1.25, abs=0.3)


@pytest.mark.parametrize(
    ("amounts", "limit"),
    [
        ([(0, 0)] * 30, None),
        ([(0, 0)] * 30, 10_000),
        ([(0, 0)] * 30, 0),
        ([(10**15, 10**15), (1, 0)], 100),
        ([(1, 0)], None),
    ],
)
def test_bars_render_sanely_at_the_extremes(amounts: list[tuple[int, int]], limit: Optional[int]) -> None:
    root = parsed(daily_bars(days(amounts), currency="USD", limit=limit))
    inside(root)
    if not any(spent or held for spent, held in amounts) and not limit:
        assert any(text.startswith("Nothing spent or held in these") for text in texts(root))


def test_no_days_at_all() -> None:
    root = parsed(daily_bars([], currency="USD"))
    assert "No days to show" in texts(root)
