"""Scatter plots for the report: where each configuration's point, whisker and label go.

Geometry only, in SVG user units: the report's template draws the plot, so every label is
escaped like the rest of the page and no plotting library (or network) is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 440
HEIGHT = 236
# The plot area inside the SVG: room on the left for the y ticks and label, below for the x's.
LEFT, RIGHT, TOP, BOTTOM = 58, WIDTH - 14, 12, HEIGHT - 44
# Points never sit on an axis line: the data range maps inside the area by this margin.
INSET = 9
# Roughly how wide a character of a point's label is (10.5px sans-serif), to keep labels apart.
_CHAR_WIDTH = 6.0
# Where labels may go: right of the y axis and above the x axis, up to the SVG's edges.
_LABEL_AREA = (LEFT + 1, 0, WIDTH - 2, BOTTOM - 1)


@dataclass
class Datum:
    """One configuration: its values on both axes (None: not plotted) and how it is named."""

    x: float | None
    y: float | None
    label: str
    title: str
    best: bool = False
    y_low: float | None = None
    y_high: float | None = None


@dataclass
class Point:
    """A datum placed in the plot: coordinates of its centre and of its whisker's ends."""

    x: float
    y: float
    label: str
    title: str
    best: bool
    y_low: float | None
    y_high: float | None
    label_x: float
    label_y: float
    label_anchor: str  # "start" (label right of the point) or "end" (left of it)
    show_label: bool  # false where it would cover another label: the tooltip still names it


@dataclass
class Tick:
    at: float
    text: str


@dataclass
class Scatter:
    """A plot ready to draw: its frame, ticks, axis labels and points (best drawn last)."""

    x_label: str
    y_label: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    points: list[Point]
    missing: int  # configurations without a value on an axis, left out of the plot
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def plot(
    data: list[Datum],
    x_label: str,
    y_label: str,
    x_prefix: str = "",
    x_suffix: str = "",
) -> Scatter | None:
    """Place ``data`` on axes that start at 0 (or below, for negative values); None when no
    datum has both values."""
    shown = [d for d in data if d.x is not None and d.y is not None]
    if not shown:
        return None
    xs = [d.x for d in shown if d.x is not None]
    ys = [v for d in shown for v in (d.y, d.y_low, d.y_high) if v is not None]
    if min(xs) == max(xs):  # one value (every run cost $0, say): one tick, points in the middle
        x_ticks, x_lo, x_hi = [xs[0]], xs[0] - 1.0, xs[0] + 1.0
    else:
        x_ticks, x_lo, x_hi = _axis(min(0.0, *xs), max(xs))
    # scores are fractions: keep 0 to 1 in view so that 0.9 does not look like a perfect score
    y_ticks, y_lo, y_hi = _axis(min(0.0, *ys), max(1.0, *ys))

    def px(value: float) -> float:
        return _scale(value, x_lo, x_hi, LEFT + INSET, RIGHT - INSET)

    def py(value: float) -> float:
        return _scale(value, y_lo, y_hi, BOTTOM - INSET, TOP + INSET)

    points = [
        Point(
            x=round(px(d.x), 1),
            y=round(py(d.y), 1),
            label=d.label + (" ★ best" if d.best else ""),
            title=d.title,
            best=d.best,
            y_low=None if d.y_low is None else round(py(d.y_low), 1),
            y_high=None if d.y_high is None else round(py(d.y_high), 1),
            label_x=0.0,
            label_y=0.0,
            label_anchor="start",
            show_label=False,
        )
        for d in shown
        if d.x is not None and d.y is not None
    ]
    points.sort(key=lambda p: not p.best)  # the best point's label is placed first
    _place_labels(points)
    points.sort(key=lambda p: p.best)  # and the best point drawn last, over any it overlaps
    decimals = _decimals(x_ticks)
    return Scatter(
        x_label=x_label,
        y_label=y_label,
        x_ticks=[Tick(round(px(v), 1), f"{x_prefix}{v:.{decimals}f}{x_suffix}") for v in x_ticks],
        y_ticks=[Tick(round(py(v), 1), f"{v:.{_decimals(y_ticks)}f}") for v in y_ticks],
        points=points,
        missing=len(data) - len(shown),
    )


def _place_labels(points: list[Point]) -> None:
    """Put each label beside its point (above right, above left, below right, below left),
    skipping any that would cover a point, a label already placed, or leave the plot."""
    taken = [(p.x - 6, p.y - 6, p.x + 6, p.y + 6) for p in points]
    for p in points:
        width = _CHAR_WIDTH * len(p.label) * (1.15 if p.best else 1.0)
        gap = 12 if p.best else 7  # clear of the best point's ring
        for anchor, x, y in [
            ("start", p.x + gap, p.y - 5),
            ("end", p.x - gap, p.y - 5),
            ("start", p.x + gap, p.y + 15),
            ("end", p.x - gap, p.y + 15),
        ]:
            left = x if anchor == "start" else x - width
            box = (left, y - 10, left + width, y + 2)
            if _within(box, _LABEL_AREA) and not any(_overlap(box, other) for other in taken):
                p.label_x, p.label_y, p.label_anchor, p.show_label = x, y, anchor, True
                taken.append(box)
                break


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _within(box: tuple[float, ...], area: tuple[float, ...]) -> bool:
    return area[0] <= box[0] and box[2] <= area[2] and area[1] <= box[1] and box[3] <= area[3]


def _axis(lo: float, hi: float, count: int = 5) -> tuple[list[float], float, float]:
    """Round tick values covering ``lo``..``hi`` (steps of 1, 2 or 5 × 10ⁿ), and the range."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    ticks = [first + i * step for i in range(round((last - first) / step) + 1)]
    return [round(t, 12) for t in ticks], first, last


def _decimals(ticks: list[float]) -> int:
    """Digits after the point that tell the ticks apart (0.25 needs 2, 0.5 needs 1)."""
    for digits in range(12):
        if all(abs(t - round(t, digits)) < 1e-12 for t in ticks):
            return digits
    return 12


def _scale(value: float, lo: float, hi: float, start: float, end: float) -> float:
    return start + (value - lo) / (hi - lo) * (end - start)
