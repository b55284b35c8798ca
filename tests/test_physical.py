"""skyqa.service.pipeline.physical: which sources the shape measures (FWHM, elongation) are taken on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyqa.service.config import DetectionConfig
from skyqa.service.pipeline.descriptor import aligned_ellipticity
from skyqa.service.pipeline.detection import detect
from skyqa.service.pipeline.physical import (MAX_SHAPE_SOURCES, measure_sources, saturated_sources, shape_sources,
                                             summarise)
from tests.fits_factory import Stars, render_stars


def _objects(n: int) -> np.ndarray:
    """n unflagged, unsaturated, high-S/N sources, in order of flux (index = flux rank)."""
    objects = np.zeros(n, dtype=[(f, float) for f in ("x", "y", "a", "b", "theta", "flux", "peak")] +
                       [("npix", int), ("flag", int)])
    rng = np.random.default_rng(0)
    objects["x"], objects["y"] = rng.uniform(20, 180, n), rng.uniform(20, 180, n)
    objects["flux"] = np.linspace(1e4, 1e6, n)
    objects["npix"], objects["peak"], objects["a"], objects["b"] = 20, 1000.0, 1.5, 1.0
    return objects


def _chosen(objects: np.ndarray) -> np.ndarray:
    """The shape sources among `objects` on a sky at 0 of a 16-bit converter with unit noise."""
    return shape_sources(objects, saturated_sources(objects, 0.0, 65535.0), 1.0, np.random.default_rng(1))


def test_shape_sources_are_a_draw_of_the_good_ones_not_the_brightest():
    """The brightest 100 of a whole CCD are another population than those of a few hundred rows: a draw keeps the
    FWHM of the band search and of every row the same."""
    objects = _objects(4 * MAX_SHAPE_SOURCES)
    ranks = _chosen(objects)
    assert len(ranks) == MAX_SHAPE_SOURCES == len(set(ranks))
    assert ranks.min() < MAX_SHAPE_SOURCES and np.median(ranks) < 3 * MAX_SHAPE_SOURCES  # faint ones too
    np.testing.assert_array_equal(_chosen(objects), ranks)


def test_every_good_source_is_measured_when_there_are_few():
    objects = _objects(MAX_SHAPE_SOURCES // 2)
    np.testing.assert_array_equal(_chosen(objects), np.arange(len(objects)))


def test_saturated_flagged_faint_and_diffuse_sources_are_not_measured():
    objects = _objects(5)
    objects["peak"][0] = 60000.0  # + the sky at 0: within 10% of saturation
    objects["flag"][1] = 1  # blended
    objects["flux"][2] = 20.0 * math.sqrt(20)  # flux S/N 20
    objects["peak"][3] = 4.0  # a fringe crest's peak, 4 noise units
    np.testing.assert_array_equal(_chosen(objects), [4])


def _fringes(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Red-band fringing as the unseen-site simulator draws it: six plane waves of 40-120 px, unit total RMS."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    waves = zip(rng.uniform(40, 120, 6), rng.uniform(0, math.pi, 6), rng.uniform(0, 2 * math.pi, 6), strict=True)
    return sum(np.cos(2 * math.pi / w * (xx * math.cos(a) + yy * math.sin(a)) + p) for w, a, p in waves) / math.sqrt(3)


@pytest.mark.parametrize("seed", [0, 2])
def test_fringes_are_not_measured_as_stars(seed):
    """Fringe crests pass the flux S/N cut by their area and come out large, elongated and aligned; on a sparse red
    field they outnumbered the stars and read as bad seeing and a tracking error. The shape measures stay the stars'."""
    shape, noise, rng = (512, 768), 10.0, np.random.default_rng(seed)
    fringes, stars = _fringes(shape, rng), render_stars(shape, Stars(n=10), rng)
    sky = (1000.0 + noise * rng.standard_normal(shape) + stars).astype(np.float32)

    def measured(image: np.ndarray):
        det = detect(image, DetectionConfig())
        sources = measure_sources(image - det.level, det.objects, det.level, det.rms, 65535.0, np.random.default_rng(0))
        return len(det.objects), summarise([sources], 0.2, None), aligned_ellipticity([sources])

    n_clean, clean, _ = measured(sky)
    n_fringed, fringed, aligned = measured(sky + (6 * noise * fringes).astype(np.float32))
    assert n_fringed > 3 * n_clean  # the crests are detected
    assert fringed.fwhm_arcsec == pytest.approx(clean.fwhm_arcsec, rel=0.2)
    assert fringed.elongation < 1.03 and aligned < 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_the_seeing_is_the_stars_on_a_field_of_galaxies(seed):
    """A sparse field's high-S/N sources can be mostly galaxies (and, on a red sky, fringe crests) that outnumber
    the stars: their FWHMs spread over everything larger than the stars', whose FWHMs stack in one narrow peak.
    The seeing is that peak, not the median of the mixture."""
    shape, noise, rng = (512, 768), 10.0, np.random.default_rng(seed)
    stars = render_stars(shape, Stars(n=15, sigma=1.5), rng)
    galaxies = sum(render_stars(shape, Stars(n=8, sigma=s, flux=(5e4, 3e5)), rng) for s in (2.5, 3.5, 5.0, 7.0))
    image = (1000.0 + noise * rng.standard_normal(shape) + stars + galaxies).astype(np.float32)
    det = detect(image, DetectionConfig())
    sources = measure_sources(image - det.level, det.objects, det.level, det.rms, 65535.0, np.random.default_rng(0))
    assert len(sources.fwhm_px) > 2 * 15  # the galaxies are measured too, and outnumber the stars
    fwhm_px = summarise([sources], 1.0, None).fwhm_arcsec  # at 1 arcsec a pixel
    assert fwhm_px == pytest.approx(2.3548 * 1.5, rel=0.1)
