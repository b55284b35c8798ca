"""The background descriptor on synthetic exposures with known skies: each feature answers to its own cause."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from skyqa.service.config import load_settings
from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.service.pipeline.preprocess import prepare_exposure
from tests.fits_factory import Stars, write_exposure

SHAPE = (384, 384)  # 6 x 6 meshes of 64 px
NOISE = 10.0  # ADU, white


def describe(tmp_path: Path, name: str, **kwargs) -> dict[str, float]:
    kwargs.setdefault("stars", Stars(n=40, flux=(5e3, 5e4)))
    path = write_exposure(tmp_path / f"{name}.fits", n_ccds=2, shape=SHAPE, noise=NOISE, compress=False, seed=5,
                          **kwargs)
    return dict(zip(FEATURES, prepare_exposure(path, load_settings(workers=1)).descriptor.tolist()))


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    return describe(tmp_path_factory.mktemp("flat"), "flat", primary_header={"EXPTIME": 300.0},
                    header={"GAIN": 1.0, "RDNOISE": 3.0, "SATURATE": 65535.0})


def test_a_gradient_raises_the_background_structure_not_the_amplifier_step(flat, tmp_path: Path) -> None:
    ramp = describe(tmp_path, "ramp", gradient=20 * NOISE)
    assert math.expm1(flat["background_structure"]) < 0.5
    assert math.expm1(ramp["background_structure"]) > 10  # ~0.9 x 20 noise units between the 5th and 95th pct
    assert math.expm1(ramp["amplifier_step"]) < 1.0  # every mesh column steps alike


def test_an_amplifier_offset_is_a_step(flat, tmp_path: Path) -> None:
    step = describe(tmp_path, "step", amp_step=5 * NOISE)
    assert math.expm1(flat["amplifier_step"]) < 0.5
    assert 3.0 < math.expm1(step["amplifier_step"]) < 6.0  # one column jump of 5 noise units above the others


def test_a_noisy_amplifier_bands_and_a_constant_offset_does_not(flat, tmp_path: Path) -> None:
    # the jump between two neighbouring rows' medians of 48 sampled pixels scatters by ~0.26 noise units on a
    # white sky (the ratio reads 0.9-1.2 with 96 pairs a CCD and a few stars); rows moved by 1 noise unit
    # jump ~5.5 times more; a constant offset moves every row alike
    banded = describe(tmp_path, "banded", banding=NOISE)
    step = describe(tmp_path, "offset", amp_step=5 * NOISE)
    assert math.exp(flat["row_banding"]) < 1.6 and math.exp(step["row_banding"]) < 1.6
    assert math.exp(banded["row_banding"]) > 4.0


def test_gradients_as_a_fraction_of_the_sky_above_the_bias(flat, tmp_path: Path) -> None:
    # GAIN 1, RDNOISE 3 e-, white noise 10 ADU: the noise says the sky is 1 x (10^2 - 3^2) = 91 ADU above the bias
    cards = {"GAIN": 1.0, "RDNOISE": 3.0}
    ramp = describe(tmp_path, "ramp", gradient=91.0, header=cards)
    assert 10 ** flat["relative_structure"] < 0.02
    assert 10 ** ramp["relative_structure"] == pytest.approx(0.9, abs=0.15)  # 5-95% of a ramp of 1 sky
    unknown = describe(tmp_path, "no_cards", gradient=91.0)
    assert math.isnan(unknown["relative_structure"]) and math.isnan(unknown["relative_sky_spread"])


def test_structured_noise_is_an_excess_over_white_noise(flat, tmp_path: Path) -> None:
    fringed = describe(tmp_path, "fringes", fringes=3 * NOISE)
    assert abs(flat["noise_excess"]) < 0.1  # sky RMS = pixel-to-pixel noise on a white sky
    assert fringed["noise_excess"] > 0.3


def test_read_noise_share_comes_from_the_header_and_the_noise(flat, tmp_path: Path) -> None:
    read_limited = describe(tmp_path, "short", header={"GAIN": 1.0, "RDNOISE": 9.0}, primary_header={"EXPTIME": 2.0})
    assert flat["read_noise_share"] == pytest.approx(0.09, abs=0.02)  # (3 e- / 1 e-/ADU)^2 / (10 ADU)^2
    assert read_limited["read_noise_share"] == pytest.approx(0.81, abs=0.1)
    assert flat["exptime"] == pytest.approx(math.log10(300)) and read_limited["exptime"] == pytest.approx(math.log10(2))
    unknown = describe(tmp_path, "no_cards")
    assert math.isnan(unknown["read_noise_share"]) and math.isnan(unknown["exptime"])


def test_saturation_and_bleed(flat, tmp_path: Path) -> None:
    saturated = describe(tmp_path, "saturated", header={"SATURATE": 3000.0}, stars=Stars(n=40, flux=(1e5, 1e6)))
    assert flat["bleed_fraction"] == pytest.approx(-6.0, abs=0.01)  # log10(0 + 1e-6): no pixel near saturation
    assert saturated["bleed_fraction"] > -3.5
    assert saturated["saturated_fraction"] > flat["saturated_fraction"] + 1.0


def test_source_density_follows_the_number_of_sources(flat, tmp_path: Path) -> None:
    crowded = describe(tmp_path, "crowded", stars=Stars(n=400, flux=(5e3, 5e4)))
    expected = math.log10(1e6 * 40 / (SHAPE[0] * SHAPE[1]) + 1)  # 40 stars a CCD
    assert flat["source_density"] == pytest.approx(expected, abs=0.15)
    assert crowded["source_density"] > flat["source_density"] + 0.6


def test_a_trail_is_an_aligned_elongation_and_the_seeing_a_width(flat, tmp_path: Path) -> None:
    trailed = describe(tmp_path, "trailed", stars=Stars(n=40, flux=(5e3, 5e4), axis_ratio=1.6, angle_deg=40.0))
    blurred = describe(tmp_path, "blurred", stars=Stars(n=40, flux=(5e3, 5e4), sigma=3.0))
    # round stars: e = (a-b)/(a+b) is noise and points every way; a 1.6 axis ratio along one direction: e <= 0.23
    # (sep's windowed moments of a pixelated star read it a little rounder)
    assert 10 ** flat["aligned_ellipticity"] < 0.05
    assert 0.12 < 10 ** trailed["aligned_ellipticity"] < 0.25
    assert trailed["elongation"] > flat["elongation"] + 0.5
    assert blurred["fwhm"] == pytest.approx(flat["fwhm"] + math.log10(2.0), abs=0.08)  # sigma 1.5 -> 3.0
    assert abs(blurred["aligned_ellipticity"] - flat["aligned_ellipticity"]) < 0.5
