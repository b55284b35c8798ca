"""Geometry for the server-rendered SVG charts (the templates draw it): night timeline, metric trends, density maps.

Plain numbers in, coordinates out: no plotting library in the serving image, and an SVG of a few hundred
elements renders in well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

WIDTH, HEIGHT, PAD = 720.0, 120.0, 28.0


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    colour: str
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Trend:
    name: str
    points: str  # SVG polyline points
    marks: list[Mark]
    low: float
    high: float


def time_axis(times: Sequence[datetime]) -> tuple[float, float]:
    stamps = [t.timestamp() for t in times]
    lo, hi = min(stamps), max(stamps)
    return lo, max(hi, lo + 60.0)


def x_of(when: datetime, axis: tuple[float, float]) -> float:
    return PAD + (WIDTH - 2 * PAD) * (when.timestamp() - axis[0]) / (axis[1] - axis[0])


def trend(name: str, times: Sequence[datetime], values: Sequence[float | None], colours: Sequence[str],
          titles: Sequence[str], axis: tuple[float, float]) -> Trend | None:
    """A metric over the night: points where it was measured, scaled to its own range."""
    kept = [(t, v, c, s) for t, v, c, s in zip(times, values, colours, titles) if v is not None]
    if not kept:
        return None
    low, high = min(k[1] for k in kept), max(k[1] for k in kept)
    span = (high - low) or 1.0
    marks = [Mark(x_of(t, axis), HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v - low) / span, c, f"{s}: {v:.3g}")
             for t, v, c, s in kept]
    return Trend(name, " ".join(f"{m.x:.1f},{m.y:.1f}" for m in marks), marks, low, high)


def density(histovector: Sequence[int], grid: int = 25) -> list[tuple[int, int, float]]:
    """(x, y, opacity) per non-empty DESOM-1 node: the share of the exposure's sources there, square-root scaled
    so that the few-source nodes stay visible (node index = y * grid + x, as in the map)."""
    counts = np.asarray(histovector, dtype=np.float64)
    if counts.max(initial=0) <= 0:
        return []
    scaled = np.sqrt(counts / counts.max())
    return [(int(i % grid), int(i // grid), round(float(scaled[i]), 3)) for i in np.flatnonzero(counts)]
