"""One exposure: per-CCD images assembled into a MegaCam-like multi-extension FITS.

Headers carry only what a real exposure would (observables and detector facts); the truth class lives
in the manifest written by skyqa.simulator.truth.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time

from skyqa.simulator import sky
from skyqa.simulator.mosaic import Chip, Mosaic
from skyqa.simulator.params import ExposureParams, Geometry
from skyqa.simulator.psf import Convolver, draw_kernel
from skyqa.simulator.site import site_of
from skyqa.simulator.sources import draw_catalog, render_scene

FILTER_NAMES = {"u": "u.MP9302", "g": "g.MP9402", "r": "r.MP9602", "i": "i.MP9703", "z": "z.MP9901"}
TILE_ROWS = 1  # RICE tiles of one row, as fpack writes them: what readers meet at real sites


def primary_header(p: ExposureParams, mosaic: Mosaic) -> fits.Header:
    camera = mosaic.camera
    h = fits.Header()
    h["TELESCOP"] = (camera.telescope, camera.telescope_long)
    h["INSTRUME"] = (camera.instrument, "Instrument")
    h["DETECTOR"] = (camera.detector, "Camera")
    h["ORIGIN"] = ("skyqa-simulator", "GalSim-based simulation")
    h["NEXTEND"] = (mosaic.geometry.n_ccds, "Number of CCD extensions")
    h["EXPNUM"] = (p.expnum, "Exposure number")
    h["OBSTYPE"] = ("OBJECT", "Observation type")
    h["OBJECT"] = (p.object, "Target field")
    h["EXPTIME"] = (p.exptime, "Integration time (seconds)")
    h["FILTER"] = ((camera.filter_names or FILTER_NAMES)[p.filter], "Filter")
    h["AIRMASS"] = (p.airmass, "Airmass at start of exposure")
    h["RA"] = (Angle(p.ra_deg, "deg").to_string(unit="hourangle", sep=":", precision=2, pad=True), "Pointing RA")
    h["DEC"] = (Angle(p.dec_deg, "deg").to_string(unit="deg", sep=":", precision=1, pad=True, alwayssign=True),
                "Pointing Dec")
    h["RA_DEG"] = (round(p.ra_deg, 6), "Pointing RA (deg)")
    h["DEC_DEG"] = (round(p.dec_deg, 6), "Pointing Dec (deg)")
    h["EQUINOX"] = (2000.0, "Equinox of coordinates")
    h["DATE-OBS"] = (p.date_obs, "UTC start of exposure")
    h["MJD-OBS"] = (round(Time(datetime.fromisoformat(p.date_obs), scale="utc").mjd, 6), "MJD at start")
    h["PIXSCAL"] = (camera.pixel_scale, "Pixel scale (arcsec/pixel)")
    return h


def ccd_header(p: ExposureParams, chip: Chip, mosaic: Mosaic) -> fits.Header:
    ny, nx = mosaic.geometry.ny, mosaic.geometry.nx
    scale = mosaic.camera.pixel_scale
    h = fits.Header()
    h["EXTNAME"] = (chip.extname, "Extension name")
    h["CCDNAME"] = (f"{mosaic.camera.detector}-{chip.index:02d}", "CCD name")
    h["IMAGEID"] = (chip.index, "CCD number in the mosaic")
    h["EXPNUM"] = (p.expnum, "Exposure number")
    h["GAIN"] = (chip.gain, "Gain (e-/ADU)")
    h["RDNOISE"] = (chip.rdnoise, "Read noise (e-)")
    h["SATURATE"] = (mosaic.camera.saturate, "Saturation level (ADU)")
    h["DETSEC"] = (f"[{chip.x0 + 1}:{chip.x0 + nx},{chip.y0 + 1}:{chip.y0 + ny}]", "Mosaic section")
    h["DATASEC"] = (f"[1:{nx},1:{ny}]", "Imaging area")
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = round(p.ra_deg, 6), round(p.dec_deg, 6)
    h["CRPIX1"] = ((mosaic.width - 1) / 2 - chip.x0 + 1, "Focal-plane centre")
    h["CRPIX2"] = ((mosaic.height - 1) / 2 - chip.y0 + 1, "Focal-plane centre")
    h["CD1_1"], h["CD1_2"] = -scale / 3600.0, 0.0
    h["CD2_1"], h["CD2_2"] = 0.0, scale / 3600.0
    return h


def ccd_image(p: ExposureParams, chip: Chip, mosaic: Mosaic, convolve: Convolver, pat: sky.Patterns,
              rng: np.random.Generator) -> np.ndarray:
    """Raw uint16 pixels of one CCD."""
    shape = (mosaic.geometry.ny, mosaic.geometry.nx)
    if chip.index in p.dead_ccds:
        return np.full(shape, round(chip.bias) if p.dead_constant else 0, np.uint16)
    img = convolve(render_scene(draw_catalog(p, shape, rng), shape))
    img += sky.background(p, chip, mosaic, pat)
    throughput = sky.vignetting(chip, mosaic)
    if throughput is not None:
        img *= throughput
    sky.add_noise(img, chip, rng)
    sky.add_cosmics(img, p, rng)
    sky.add_bias(img, chip, p, pat, rng)
    saturate = mosaic.camera.saturate
    sky.bleed(img, saturate)
    return np.clip(np.rint(img), 0, saturate).astype(np.uint16)


def simulate_exposure(params: ExposureParams, size: str | tuple[int, int, int] | Geometry,
                      rng: np.random.Generator, compress: bool = True, tile_rows: int = TILE_ROWS) -> fits.HDUList:
    """Render every CCD of the exposure's camera; same params and rng state give byte-identical pixels.

    `tile_rows` > 1 (e.g. 32) writes ~3x faster but is not what fpack produces: only for explicit use."""
    mosaic = site_of(params).mosaic(size)
    convolve = Convolver(draw_kernel(params))
    pat = sky.draw_patterns(params, mosaic, rng)
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    for chip, chip_rng in zip(mosaic.chips, rng.spawn(len(mosaic.chips)), strict=True):
        data = ccd_image(params, chip, mosaic, convolve, pat, chip_rng)
        header = ccd_header(params, chip, mosaic)
        if compress:
            tile = (min(tile_rows, data.shape[0]), data.shape[1])
            hdus.append(fits.CompImageHDU(data, header, compression_type="RICE_1", tile_shape=tile))
        else:
            hdus.append(fits.ImageHDU(data, header))
    return fits.HDUList([fits.PrimaryHDU(header=primary_header(params, mosaic)), *hdus])
