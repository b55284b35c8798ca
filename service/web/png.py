"""PNG pictures drawn on the server: the DESOM-1 prototype grid (Pillow, as the previews use)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def grey_png(image: np.ndarray) -> bytes:
    """8-bit greyscale PNG of a 2-D uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def prototype_grid(prototypes: np.ndarray, columns: int) -> bytes:
    """(K, h, w) decoded prototypes tiled row by row (node = y * columns + x), each min-max scaled, dark on light
    like the paper's figure."""
    k, h, w = prototypes.shape
    rows = -(-k // columns)
    p = prototypes.astype(np.float32)
    lo, hi = p.min(axis=(1, 2), keepdims=True), p.max(axis=(1, 2), keepdims=True)
    tiles = 255 - np.round(255 * (p - lo) / np.maximum(hi - lo, 1e-6)).astype(np.uint8)
    tiles = np.concatenate([tiles, np.full((rows * columns - k, h, w), 255, np.uint8)])
    return grey_png(tiles.reshape(rows, columns, h, w).transpose(0, 2, 1, 3).reshape(rows * h, columns * w))
