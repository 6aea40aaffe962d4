"""Server-side SVG charts for console pages: line and bar charts as inline SVG, no script at all.

The console's Content-Security-Policy forbids inline script and inline styles, so a chart is plain
SVG markup: geometry in attributes, colours from classes in static/reports.css. Every label goes
through `Markup.format`, which escapes it, so a name with `<script>` in it is drawn as text.

Each chart carries its numbers twice: the SVG has a `<title>` and `<desc>` (read by screen readers,
named by `aria-labelledby`), and `Chart.rows()` gives the same figures for an HTML table under it.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 56  # room for tick labels, the legend and the axis titles
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
COLOURS = 6  # classes s0..s5 in reports.css; more series reuse them
MISSING = "-"

ChartKind = Literal["line", "bar", "stacked"]


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values, one per category; None where there is nothing to show (no answers)."""

    name: str
    values: tuple[float | None, ...]
    fmt: str = "{:.0f}"  # how a value reads in the table and tooltips, e.g. "{:.2f}", "{:.0f}%", "{:+.0f}"

    def text(self, index: int) -> str:
        value = self.values[index]
        return MISSING if value is None else self.fmt.format(value)


@dataclass(frozen=True, slots=True)
class Axis:
    """The value axis: its range and tick positions."""

    low: float
    high: float
    ticks: tuple[float, ...]

    def y(self, value: float) -> float:
        """The SVG y coordinate of a value (SVG's y grows downwards)."""
        share = (value - self.low) / (self.high - self.low)
        return TOP + PLOT_H * (1 - min(max(share, 0.0), 1.0))


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart and the figures behind it; `svg()` draws it, `rows()` tabulates it."""

    id: str  # unique on the page: the SVG's title and desc ids derive from it
    title: str
    x_label: str
    y_label: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    kind: ChartKind = "line"
    y_range: tuple[float, float] | None = None  # a fixed scale (CSAT 1-5); None: from 0 to the data
    integer: bool = False  # counts: ticks on whole numbers
    table_only: tuple[Series, ...] = ()  # extra columns for the table (a total, a rate), not drawn

    def columns(self) -> tuple[Series, ...]:
        return self.series + self.table_only

    def rows(self) -> list[tuple[str, list[str]]]:
        """Per category, every column's value as text: the accessible table of the same numbers."""
        return [(category, [column.text(i) for column in self.columns()]) for i, category in enumerate(self.categories)]

    def description(self) -> str:
        """The figures as one sentence, for the SVG's <desc>."""
        parts = [f"{category}: " + ", ".join(f"{column.name} {column.text(i)}" for column in self.columns())
                 for i, category in enumerate(self.categories)]
        return "; ".join(parts)

    def axis(self) -> Axis:
        if self.y_range is not None:
            low, high = self.y_range
            return Axis(low, high, _ticks(low, high, _step((high - low) / 4, integer=self.integer)))
        return value_axis(_drawn_values(self), integer=self.integer)

    def svg(self) -> Markup:
        axis = self.axis()
        body = [_frame(self, axis)]
        if self.kind == "line":
            body += [_line(self, axis, index) for index in range(len(self.series))]
        elif self.kind == "bar":
            body += [_bars(self, axis, index) for index in range(len(self.series))]
        else:
            body.append(_stacked(self, axis))
        body.append(_legend(self.series))
        head = Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg chart-{}" viewBox="0 0 {} {}" role="img" '
            'aria-labelledby="{}-title {}-desc" font-size="11"><title id="{}-title">{}</title><desc id="{}-desc">{}</desc>'
        ).format(self.kind, WIDTH, HEIGHT, self.id, self.id, self.id, self.title, self.id, self.description())
        return head + Markup("").join(body) + Markup("</svg>")


# -- scales --------------------------------------------------------------------------------------------


def value_axis(values: Sequence[float], *, integer: bool = False) -> Axis:
    """An axis from 0 (or below, for negatives) to a round number at or above the largest value."""
    low = min([0.0, *values])
    high = max([0.0, *values])
    if high == low:
        high = low + 1  # nothing to show yet: a unit scale, not a division by zero
    step = _step((high - low) / 4, integer=integer)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    return Axis(low, high, _ticks(low, high, step))


def _step(raw: float, *, integer: bool) -> float:
    """A round step (1, 2 or 5 times a power of ten) at least `raw`."""
    if raw <= 0:
        return 1.0
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw - 1e-9)
    return max(step, 1.0) if integer else step


def _ticks(low: float, high: float, step: float) -> tuple[float, ...]:
    count = round((high - low) / step)
    return tuple(low + i * step for i in range(count + 1))


def _drawn_values(chart: Chart) -> list[float]:
    if chart.kind == "stacked":
        return [sum(s.values[i] or 0 for s in chart.series) for i in range(len(chart.categories))]
    return [value for s in chart.series for value in s.values if value is not None]


def _x(chart: Chart, index: int) -> float:
    """The centre of a category's band."""
    return LEFT + (index + 0.5) * _band(chart)


def _band(chart: Chart) -> float:
    return PLOT_W / max(len(chart.categories), 1)


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}"


def _tick_text(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


# -- pieces --------------------------------------------------------------------------------------------


def _frame(chart: Chart, axis: Axis) -> Markup:
    """Grid lines with the value ticks, the category labels and both axis titles."""
    parts = [Markup('<g class="grid">')]
    for tick in axis.ticks:
        y = _n(axis.y(tick))
        parts.append(Markup('<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#e4e7eb"/>'
                            '<text class="tick" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>')
                     .format(LEFT, WIDTH - RIGHT, y, y, LEFT - 6, y, _tick_text(tick)))
    parts.append(Markup("</g>"))
    base = _n(axis.y(max(axis.low, min(0.0, axis.high))))
    parts.append(Markup('<g class="axis"><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#9aa5b1"/>')
                 .format(LEFT, WIDTH - RIGHT, base, base))
    every = max(1, math.ceil(len(chart.categories) * 56 / PLOT_W))  # skip labels that would overlap
    for index, category in enumerate(chart.categories):
        if index % every == 0:
            parts.append(Markup('<text class="category" x="{}" y="{}" text-anchor="middle">{}</text>')
                         .format(_n(_x(chart, index)), TOP + PLOT_H + 16, category))
    parts.append(Markup("</g>"))
    parts.append(Markup('<text class="axis-title" x="{}" y="{}" text-anchor="middle">{}</text>')
                 .format(_n(LEFT + PLOT_W / 2), HEIGHT - 10, chart.x_label))
    middle = _n(TOP + PLOT_H / 2)
    parts.append(Markup('<text class="axis-title" x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>')
                 .format(middle, middle, chart.y_label))
    return Markup("").join(parts)


def _line(chart: Chart, axis: Axis, index: int) -> Markup:
    """One series as line segments (broken where a month has no value) with a dot per value."""
    series = chart.series[index]
    colour = f"s{index % COLOURS}"
    segments: list[list[str]] = [[]]
    dots: list[Markup] = []
    for i, value in enumerate(series.values):
        if value is None:
            segments.append([])
            continue
        x, y = _n(_x(chart, i)), _n(axis.y(value))
        segments[-1].append(f"{x},{y}")
        dots.append(Markup('<circle class="dot {}" cx="{}" cy="{}" r="3.5"><title>{}</title></circle>')
                    .format(colour, x, y, _tooltip(chart, series, i)))
    lines = [Markup('<polyline class="line {}" fill="none" stroke-width="2" points="{}"/>').format(colour, " ".join(points))
             for points in segments if len(points) > 1]
    return Markup('<g class="series">') + Markup("").join(lines + dots) + Markup("</g>")


def _bars(chart: Chart, axis: Axis, index: int) -> Markup:
    """One series of a grouped bar chart: its bar sits in its slot within each category's band."""
    series = chart.series[index]
    group = _band(chart) * 0.7
    width = group / len(chart.series)
    zero = axis.y(max(axis.low, min(0.0, axis.high)))
    bars = []
    for i, value in enumerate(series.values):
        if value is None:
            continue
        x = _x(chart, i) - group / 2 + index * width
        top = axis.y(value)
        bars.append(_rect(f"s{index % COLOURS}", x, min(top, zero), width, abs(zero - top), _tooltip(chart, series, i)))
    return Markup('<g class="series">') + Markup("").join(bars) + Markup("</g>")


def _stacked(chart: Chart, axis: Axis) -> Markup:
    """Every series stacked in one bar per category, the first series at the bottom."""
    width = _band(chart) * 0.6
    bars = []
    for i in range(len(chart.categories)):
        total = 0.0
        for index, series in enumerate(chart.series):
            value = series.values[i] or 0
            if value <= 0:
                continue
            bottom, top = axis.y(total), axis.y(total + value)
            bars.append(_rect(f"s{index % COLOURS}", _x(chart, i) - width / 2, top, width, bottom - top,
                              _tooltip(chart, series, i)))
            total += value
    return Markup('<g class="series">') + Markup("").join(bars) + Markup("</g>")


def _rect(colour: str, x: float, y: float, width: float, height: float, tooltip: str) -> Markup:
    return Markup('<rect class="bar {}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>').format(
        colour, _n(x), _n(y), _n(width), _n(height), tooltip)


def _tooltip(chart: Chart, series: Series, index: int) -> str:
    return f"{chart.categories[index]} · {series.name}: {series.text(index)}"


def _legend(series: Sequence[Series]) -> Markup:
    """The series names across the top, each after a swatch of its colour."""
    parts = [Markup('<g class="legend">')]
    x = float(LEFT)
    for index, item in enumerate(series):
        parts.append(Markup('<rect class="bar s{}" x="{}" y="12" width="12" height="12"/>'
                            '<text x="{}" y="22">{}</text>').format(index % COLOURS, _n(x), _n(x + 16), item.name))
        x += 16 + _text_width(item.name) + 18
    parts.append(Markup("</g>"))
    return Markup("").join(parts)


def _text_width(text: str) -> float:
    """Roughly how wide a label is at 11px: Chinese characters are about twice a Latin letter."""
    return sum(11 if unicodedata.east_asian_width(char) in "WF" else 6.5 for char in text)
