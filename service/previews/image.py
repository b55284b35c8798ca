"""The focal-plane preview: every CCD binned into its place in the mosaic, zscale-stretched, one small image.

Interfaces:
- `bin_factor(ccds, max_side) -> int`: the binning that fits the whole focal plane in `max_side` pixels.
- `band_rows(start, band, shape, factor) -> dict`: the binned preview rows a band already in memory holds, taken in
  a pipeline worker before detection touches the pixels.
- `missing_rows(known, shape, factor)`, `bin_rows(rows, factor)` and `ccd_thumbnail(known, shape, factor, fetched)`:
  one CCD binned by `factor`: one row per `factor` rows (those `band_rows` collected, the others `missing_rows`,
  fetched by a strided read and binned), averaged over blocks of `factor` columns.
- `Mosaic` (thumbnails + layout) and `render(mosaic, fmt, quality, max_bytes) -> bytes`: WebP or PNG, north
  (increasing FITS rows) up; CCDs placed by DETSEC, or on a grid when any CCD lacks it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.visualization import ZScaleInterval
from PIL import Image

Section = tuple[int, int, int, int]  # DETSEC (x1, x2, y1, y2), 1-based inclusive, x1 > x2 when flipped


@dataclass
class Mosaic:
    factor: int
    sections: list[Section | None] = field(default_factory=list)  # one per CCD, in file order
    thumbnails: list[np.ndarray | None] = field(default_factory=list)  # None: CCD not read (too small)
    ccd_shape: tuple[int, int] = (0, 0)  # the largest CCD (rows, cols): the grid cell when DETSEC is missing


def _extent(sections: Sequence[Section | None], shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """(rows, cols) of the focal plane in unbinned pixels."""
    if sections and all(s is not None for s in sections):
        return max(max(s[2], s[3]) for s in sections), max(max(s[0], s[1]) for s in sections)
    cols, rows = _grid(len(shapes))
    return rows * max(s[0] for s in shapes), cols * max(s[1] for s in shapes)


def _grid(n: int) -> tuple[int, int]:
    cols = max(1, math.ceil(math.sqrt(n)))
    return cols, max(1, math.ceil(n / cols))


def bin_factor(sections: Sequence[Section | None], shapes: Sequence[tuple[int, int]], max_side: int) -> int:
    return max(1, math.ceil(max(_extent(sections, shapes)) / max_side)) if shapes else 1


def _wanted(shape: tuple[int, int], factor: int) -> list[int]:
    return [j * factor + factor // 2 for j in range(shape[0] // factor)]


def band_rows(start: int, band: np.ndarray, shape: tuple[int, int], factor: int) -> dict[int, np.ndarray]:
    """{preview row index: binned row} for the preview rows inside a band whose first CCD row is `start`."""
    return {j: bin_rows(band[row - start], factor)
            for j, row in enumerate(_wanted(shape, factor)) if start <= row < start + len(band)}


def missing_rows(known: dict[int, np.ndarray], shape: tuple[int, int], factor: int) -> list[int]:
    """The CCD rows of the preview rows `known` (from `band_rows`) lacks: what a strided read has to fetch."""
    return [row for j, row in enumerate(_wanted(shape, factor)) if j not in known]


def bin_rows(rows: np.ndarray, factor: int) -> np.ndarray:
    """Rows (the last axis: columns) averaged over blocks of `factor` columns, float32."""
    nx = rows.shape[-1] // factor
    return rows[..., : nx * factor].reshape(*rows.shape[:-1], nx, factor).mean(axis=-1).astype(np.float32)


def ccd_thumbnail(known: dict[int, np.ndarray], shape: tuple[int, int], factor: int,
                  fetched: np.ndarray) -> np.ndarray:
    """(rows // factor, cols // factor) float32: the rows `known` holds, and `fetched`, the binned rows of
    `missing_rows` in their order."""
    out = np.empty((shape[0] // factor, shape[1] // factor), np.float32)
    for j, row in known.items():
        out[j] = row
    out[[j for j in range(len(out)) if j not in known]] = fetched
    return out


def assemble(mosaic: Mosaic) -> np.ndarray:
    """The focal plane as one float32 array (row 0 = lowest FITS row), NaN in the gaps."""
    f = mosaic.factor
    shapes = [mosaic.ccd_shape] * len(mosaic.sections)
    rows, cols = (math.ceil(v / f) for v in _extent(mosaic.sections, shapes))
    canvas = np.full((rows, cols), np.nan, np.float32)
    placed = all(s is not None for s in mosaic.sections)
    grid_cols, _ = _grid(len(mosaic.sections))
    cell_rows, cell_cols = (math.ceil(v / f) for v in mosaic.ccd_shape)
    for i, (section, thumb) in enumerate(zip(mosaic.sections, mosaic.thumbnails, strict=True)):
        if thumb is None or not thumb.size:
            continue
        if placed:
            x1, x2, y1, y2 = section
            top, left = (min(y1, y2) - 1) // f, (min(x1, x2) - 1) // f
            thumb = thumb[:, ::-1] if x1 > x2 else thumb
            thumb = thumb[::-1] if y1 > y2 else thumb
        else:
            top, left = (i // grid_cols) * cell_rows, (i % grid_cols) * cell_cols
        h, w = min(thumb.shape[0], rows - top), min(thumb.shape[1], cols - left)
        if h > 0 and w > 0:
            canvas[top : top + h, left : left + w] = thumb[:h, :w]
    return canvas


def stretch(canvas: np.ndarray) -> np.ndarray:
    """zscale (IRAF's display stretch) to 8 bits, north up; gaps and dead pixels black."""
    finite = np.isfinite(canvas)
    out = np.zeros(canvas.shape, np.uint8)
    if finite.any():
        lo, hi = ZScaleInterval().get_limits(canvas[finite])
        scaled = (canvas[finite] - lo) / max(hi - lo, 1e-12)
        out[finite] = (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    return out[::-1]


def render(mosaic: Mosaic, fmt: str, quality: int, max_bytes: int) -> bytes:
    """The encoded preview, at most `max_bytes`: lower WebP quality first, then halve the size until it fits."""
    image = Image.fromarray(stretch(assemble(mosaic)))  # uint8 2-D: greyscale ("L")
    while True:
        for q in ((quality, 60, 40, 25) if fmt == "webp" else (None,)):
            buffer = io.BytesIO()
            # WebP method 0: a third of the default's CPU (0.08 vs 0.24 s a megapixel) for ~the same size
            image.save(buffer, format=fmt.upper(), **({"quality": q, "method": 0} if q else {"optimize": True}))
            if buffer.tell() <= max_bytes or min(image.size) <= 16:
                return buffer.getvalue()
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BOX)
