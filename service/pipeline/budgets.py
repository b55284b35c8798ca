"""Resource budgets checked from FITS headers before any pixel is read or decompressed.

A header is a promise the file need not keep: a tile-compressed HDU of a few kB can declare 200000 x 200000
pixels, and a file can hold thousands of tiny HDUs. The reader refuses such files with a reason instead of
trying (and exhausting memory or time). Defaults leave ample room for a MegaCam exposure
(36-40 CCDs of 2112 x 4644 = 9.8 Mpix, ~390 Mpix in all).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Budgets(BaseModel):
    max_ccd_pixels: int = Field(64_000_000, ge=1, description="pixels of one CCD image HDU (NAXIS1 x NAXIS2)")
    max_exposure_pixels: int = Field(1_000_000_000, ge=1, description="pixels of all CCD HDUs together")
    max_hdus: int = Field(200, ge=1, description="HDUs in one file, primary included")
