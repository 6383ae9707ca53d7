"""The loss curve of a fine-tune run as an inline SVG polyline, laid out on the server.

No script draws it: the template writes the points and the tick labels computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 640
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 56, 14, 12, 36
MAX_POINTS = 400


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the SVG's coordinates
    label: str


@dataclass(frozen=True)
class LossChart:
    points: str  # "x,y x,y ..." for <polyline points>
    count: int  # how many (step, loss) pairs the run reported
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    last_x: float
    last_y: float
    last_step: int
    last_loss: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM


def clean_losses(raw: Any) -> list[tuple[int, float]]:
    """The run's ``[[step, loss], ...]`` with anything malformed or not finite left out,
    in step order."""
    pairs: list[tuple[int, float]] = []
    if not isinstance(raw, list):
        return pairs
    for item in raw:
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        step, loss = item
        if isinstance(step, bool) or isinstance(loss, bool):
            continue
        if not isinstance(step, int | float) or not isinstance(loss, int | float):
            continue
        if not (math.isfinite(step) and math.isfinite(loss)):
            continue
        pairs.append((int(step), float(loss)))
    pairs.sort(key=lambda pair: pair[0])
    return pairs


def _thin(pairs: Sequence[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    """At most ``limit`` pairs, evenly spread, always keeping the first and the last."""
    if len(pairs) <= limit:
        return list(pairs)
    stride = (len(pairs) - 1) / (limit - 1)
    return [pairs[round(i * stride)] for i in range(limit)]


def _format_loss(value: float, span: float) -> str:
    """Enough decimals to tell the ticks of a ``span`` apart."""
    decimals = next((d for d, least in enumerate((50, 5, 0.5, 0.05)) if span >= least), 4)
    return f"{value:.{decimals}f}"


def loss_chart(raw: Any) -> LossChart | None:
    """The chart of ``raw`` (a run's ``losses``), or None when there is nothing to draw."""
    reported = clean_losses(raw)
    pairs = _thin(reported, MAX_POINTS)
    if not pairs:
        return None
    steps = [step for step, _ in pairs]
    losses = [loss for _, loss in pairs]
    first_step, last_step = steps[0], steps[-1]
    low, high = min(losses), max(losses)
    if high - low < 1e-9:
        pad = abs(high) * 0.1 or 0.5
        low, high = low - pad, high + pad
    else:
        pad = (high - low) * 0.05
        low, high = max(0.0, low - pad) if low >= 0 else low - pad, high + pad
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x_of(step: float) -> float:
        if last_step == first_step:
            return LEFT + plot_w / 2
        return LEFT + (step - first_step) / (last_step - first_step) * plot_w

    def y_of(loss: float) -> float:
        return TOP + (high - loss) / (high - low) * plot_h

    coords = [(round(x_of(s), 1), round(y_of(v), 1)) for s, v in pairs]
    x_steps = sorted({first_step, round((first_step + last_step) / 2), last_step})
    x_ticks = [Tick(round(x_of(s), 1), str(s)) for s in x_steps]
    y_values = [low + (high - low) * i / 4 for i in range(5)]
    y_ticks = [Tick(round(y_of(v), 1), _format_loss(v, high - low)) for v in y_values]
    return LossChart(
        points=" ".join(f"{x},{y}" for x, y in coords),
        count=len(reported),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        last_x=coords[-1][0],
        last_y=coords[-1][1],
        last_step=last_step,
        last_loss=losses[-1],
    )
