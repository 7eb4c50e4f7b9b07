"""Charts as geometry: the pages draw them as inline SVG from these numbers.

Drawn on the server rather than by a JavaScript chart library so that a page shows its data
at first paint, without a script, and so that every label (a dataset's name, an account) goes
through the template engine's escaping like the rest of the page. Each chart also carries its
data as rows for the table the page puts beside it (screen readers, copy and paste).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Bar", "Chart", "Series", "bar_chart", "stacked_bar_chart", "step_chart"]

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    tip: str  # shown as the bar's <title>: what it is and its exact value


@dataclass(frozen=True)
class Series:
    name: str
    colour: str


@dataclass(frozen=True)
class Chart:
    title: str
    description: str
    bars: list[Bar] = field(default_factory=list)
    line: str = ""  # an SVG polyline's points, for step charts
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    legend: list[Series] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not self.rows


def _ticks(top: float, fmt: str = "{:g}") -> list[tuple[float, str]]:
    """Four ticks from 0 to ``top``, as (SVG y, label)."""
    inner = HEIGHT - TOP - BOTTOM
    return [
        (TOP + inner - inner * i / 4, fmt.format(top * i / 4) if top else "0") for i in range(5)
    ]


def _label_every(n: int, room: int = 16) -> int:
    return max(1, -(-n // room))


def bar_chart(
    title: str,
    description: str,
    items: Sequence[tuple[str, float, str]],
    value_name: str = "value",
) -> Chart:
    """Vertical bars, one per (label, value, colour); negative values hang below zero."""
    if not items:
        return Chart(title, description, columns=["item", value_name])
    hi = max(0.0, *(v for _, v, _ in items))
    lo = min(0.0, *(v for _, v, _ in items))
    if hi == lo:  # all zeros: a floor with room above it
        hi = 1.0
    span = hi - lo
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / len(items)
    zero = TOP + inner_h * hi / span
    bars, labels = [], []
    every = _label_every(len(items))
    for i, (label, value, colour) in enumerate(items):
        # at least half a pixel, so that a zero is seen, drawn on the side of its sign
        h = max(inner_h * abs(value) / span, 0.5)
        y = zero - h if value > 0 or (value == 0 and lo == 0) else zero
        y = min(max(y, TOP), TOP + inner_h - h)  # that half pixel never leaves the frame
        x = LEFT + i * step + step * 0.1
        bars.append(Bar(x, y, step * 0.8, h, colour, f"{label}: {value:g}"))
        if i % every == 0 or i == len(items) - 1:
            labels.append((LEFT + i * step + step / 2, label))
    ticks = [
        (TOP + inner_h * (hi - (lo + span * k / 4)) / span, f"{lo + span * k / 4:.3g}")
        for k in range(5)
    ]
    rows = [[label, f"{value:g}"] for label, value, _ in items]
    return Chart(
        title,
        description,
        bars=bars,
        y_ticks=ticks,
        x_labels=labels,
        columns=["item", value_name],
        rows=rows,
    )


def stacked_bar_chart(
    title: str,
    description: str,
    series: Sequence[Series],
    groups: Sequence[tuple[str, Sequence[int]]],
    scale: int = 10**18,
    unit: str = "ETH",
) -> Chart:
    """One bar per group, its series stacked (amounts in wei, shown in ``unit``)."""
    columns = ["group", *(s.name for s in series), "total"]
    if not groups:
        return Chart(title, description, legend=list(series), columns=columns)
    top = max(sum(v) for _, v in groups) / scale or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = inner_w / len(groups)
    bars, labels, rows = [], [], []
    for i, (label, values) in enumerate(groups):
        base = float(TOP + inner_h)
        x = LEFT + i * step + step * 0.15
        for s, v in zip(series, values, strict=True):
            h = inner_h * (v / scale) / top
            if v > 0:
                bars.append(
                    Bar(
                        x,
                        base - h,
                        step * 0.7,
                        h,
                        s.colour,
                        f"{label}, {s.name}: {v / scale:g} {unit}",
                    )
                )
            base -= h
        labels.append((LEFT + i * step + step / 2, label))
        rows.append([label, *(f"{v / scale:g}" for v in values), f"{sum(values) / scale:g}"])
    return Chart(
        title,
        description,
        bars=bars,
        y_ticks=_ticks(top, "{:.3g}"),
        x_labels=labels,
        legend=list(series),
        columns=columns,
        rows=rows,
    )


def step_chart(
    title: str, description: str, points: Sequence[tuple[int, int]], x_name: str, y_name: str
) -> Chart:
    """A non-decreasing step line through (x, y) points (a dataset's size by block)."""
    if not points:
        return Chart(title, description, columns=[x_name, y_name])
    x0, x1 = points[0][0], points[-1][0]
    top = max(y for _, y in points) or 1
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xs = (x1 - x0) or 1

    def px(x: int) -> float:
        return LEFT + inner_w * (x - x0) / xs

    def py(y: int) -> float:
        return TOP + inner_h - inner_h * y / top

    coords: list[str] = []
    prev_y = 0
    for x, y in points:
        coords.append(f"{px(x):.1f},{py(prev_y):.1f}")
        coords.append(f"{px(x):.1f},{py(y):.1f}")
        prev_y = y
    coords.append(f"{LEFT + inner_w:.1f},{py(prev_y):.1f}")
    return Chart(
        title,
        description,
        line=" ".join(coords),
        y_ticks=_ticks(top, "{:.0f}"),
        x_labels=[(px(x0), str(x0)), (px(x1), str(x1))] if x1 != x0 else [(px(x0), str(x0))],
        columns=[x_name, y_name],
        rows=[[str(x), str(y)] for x, y in points],
    )
