"""Row bands of tile-compressed CCDs through cfitsio (the `fitsio` package).

fpack writes RICE tiles of one image row: astropy's `CompImageHDU.section` pays a Python-level
cost per tile (a 1,280-row read of one 4612 x 2048 CCD: ~0.21 s), cfitsio's `fits_read_subset`
decompresses the same tiles in C (~0.08 s). Only tile-compressed HDUs of files that are not
gzip-compressed as a whole come here: cfitsio would inflate a `.fits.gz` into memory at open, so
those, and plain images (astropy reads just the bytes a band needs), stay with astropy.
"""

from __future__ import annotations

import os

import fitsio
import numpy as np


def open_fits(path: str | os.PathLike) -> fitsio.FITS:
    """A read-only cfitsio handle; HDU numbers are 0-based as in astropy."""
    return fitsio.FITS(os.fspath(path), "r")


def read_band(fits: fitsio.FITS, hdu_index: int, origin: tuple[int, int], shape: tuple[int, int],
              band: tuple[int, int]) -> np.ndarray:
    """Rows [start, stop) of the data section (origin, shape) of image HDU `hdu_index`, in its file dtype.

    cfitsio applies BZERO/BSCALE and the float quantisation (NaNs restored) as it decompresses."""
    (y0, x0), (_, nx) = origin, shape
    return fits[hdu_index][y0 + band[0] : y0 + band[1], x0 : x0 + nx]
