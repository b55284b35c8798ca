"""A greyscale PNG from a numpy array (zlib + struct): the DESOM-1 prototype grid without an imaging library."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def grey_png(image: np.ndarray) -> bytes:
    """8-bit greyscale PNG of a 2-D uint8 array."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError("a 2-D uint8 array")
    height, width = image.shape
    raw = np.hstack([np.zeros((height, 1), np.uint8), image]).tobytes()  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


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
