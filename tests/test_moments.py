"""skyqa.service.pipeline.moments: the shapes of trailed and round stars, and sources it cannot measure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyqa.service.config import DetectionConfig
from skyqa.service.pipeline.detection import detect
from skyqa.service.pipeline.moments import adaptive_moments

SIGMA = 1.5  # px: a 3.5 px FWHM


def _trailed_stars(trail_px: float, angle: float, rng: np.random.Generator, noise: float = 10.0,
                   flux: float = 2e4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 6 x 6 grid of Gaussian stars, each moved `trail_px` along `angle` during the exposure, on white noise."""
    shape = (200, 200)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    x = 20.0 + 30.0 * (np.arange(36) % 6) + rng.uniform(-0.5, 0.5, 36)
    y = 20.0 + 30.0 * (np.arange(36) // 6) + rng.uniform(-0.5, 0.5, 36)
    image = noise * rng.standard_normal(shape)
    steps = np.linspace(-trail_px / 2, trail_px / 2, 41)
    for x0, y0 in zip(x, y, strict=True):
        star = sum(np.exp(-((xx - x0 - t * math.cos(angle)) ** 2 + (yy - y0 - t * math.sin(angle)) ** 2)
                          / (2 * SIGMA**2)) for t in steps)
        image += flux * star / star.sum()
    return image.astype(np.float32), x, y


@pytest.mark.parametrize(("trail_px", "angle"), [(0.0, 0.0), (3.0, 0.4), (3.0, 2.0)])
def test_the_axis_ratio_and_angle_of_a_trail(trail_px, angle):
    """A trail of length L adds L^2 / 12 to the variance along it: a/b = sqrt(1 + L^2 / (12 sigma^2)) while the
    trailed star is still nearly Gaussian (L up to about 2 sigma; longer, the weight reads it more elongated still)."""
    image, x, y = _trailed_stars(trail_px, angle, np.random.default_rng(0))
    shape = adaptive_moments(image, x, y, np.full(len(x), 1.0))
    assert shape.ok.all()
    expected = math.sqrt(1 + trail_px**2 / (12 * SIGMA**2))
    assert np.median(shape.elongation) == pytest.approx(expected, abs=0.03 + 0.04 * (expected - 1))
    if trail_px:
        doubled = np.angle(np.mean(np.exp(2j * shape.theta)))  # axial: the mean of the doubled angles
        assert math.degrees(abs(np.angle(np.exp(1j * (doubled - 2 * angle))))) / 2 < 3.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_mild_trail_shows_more_than_in_the_isophote(seed):
    """The mildest trail an operator flags (about one FWHM) is diluted in the moments of the pixels above the detection
    isophote, a core a few pixels across; the matched weight reads it from the whole profile."""
    image, _, _ = _trailed_stars(3.5, 0.7, np.random.default_rng(seed), flux=8e3)
    det = detect(image, DetectionConfig())
    objects = det.objects[det.objects["flag"] == 0]
    shape = adaptive_moments(image - det.level, objects["x"], objects["y"], np.sqrt(objects["a"] * objects["b"]))
    isophotal = np.median(objects["a"] / objects["b"]) - 1
    adaptive = np.median(shape.elongation[shape.ok]) - 1
    assert adaptive > 1.4 * isophotal
    assert adaptive == pytest.approx(math.sqrt(1 + 3.5**2 / (12 * SIGMA**2)) - 1, rel=0.2)


def test_sources_it_cannot_measure_are_not_ok():
    """A stamp off the image, a NaN pixel, or no flux under the weight: not ok, NaN shape, and no exception."""
    image, x, y = _trailed_stars(0.0, 0.0, np.random.default_rng(2))
    image[int(round(y[7])) + 1, int(round(x[7]))] = np.nan
    image[88:102, 88:102] = 0.0  # between the stars
    x, y = np.append(x, 95.0), np.append(y, 95.0)
    x[3] = 2.0
    shape = adaptive_moments(image, x, y, np.full(len(x), 1.0))
    assert np.flatnonzero(~shape.ok).tolist() == [3, 7, 36]
    assert np.isnan(shape.elongation[~shape.ok]).all() and np.isfinite(shape.elongation[shape.ok]).all()
    sizes = np.full(len(x), 1.0)
    sizes[:2] = np.nan, np.inf  # the starting sizes come from the detection's moments of hostile pixels
    again = adaptive_moments(image, x, y, sizes)
    np.testing.assert_array_equal(again.ok, shape.ok)
    none = adaptive_moments(image, np.zeros(0), np.zeros(0), np.zeros(0))
    assert none.elongation.size == none.theta.size == none.ok.size == 0
