"""The randomised site (the shipped models' training archive): every exposure draws its own camera and sky
inside physical ranges, reproducibly from its seed, with its own seeds and exposure numbers, truth only in
the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skyqa.service.config import load_settings
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.simulator.night import exposure_seeds, simulate_night, simulate_one
from skyqa.simulator.params import BAD_SEEING, CLASSES, GOOD_SEEING, RED_FILTERS, draw_params, expnum_for
from skyqa.simulator.randomised import LAYOUTS
from skyqa.simulator.site import SITES, site_of
from skyqa.simulator.truth import read_truth

RANDOMISED = SITES["randomised"]


def _draws(n: int = 60) -> list:
    return [RANDOMISED.for_exposure(seed) for seed in exposure_seeds(1, n, "randomised")]


def test_every_exposure_draws_its_own_camera_and_sky() -> None:
    sites = _draws()
    assert all(s.draw is None and s.name == "randomised" for s in sites)
    assert all(a.camera != b.camera and a.sky != b.sky for a, b in zip(sites, sites[1:]))
    for name in ("pixel_scale", "gain", "rdnoise", "bias", "saturate", "vignetting", "obscuration", "detector_seed"):
        assert len({getattr(s.camera, name) for s in sites}) > len(sites) // 2, name  # continuous ranges, not a few values
    for name in ("good_seeing", "bad_seeing", "moon", "star_density", "gradient", "red_fringe"):
        assert len({getattr(s.sky, name) for s in sites}) > len(sites) // 2, name  # continuous ranges, not a few values
    assert {s.camera.instrument.removeprefix("RandCam-") for s in sites} == set(LAYOUTS)
    assert len({s.geometry("small") for s in sites}) > len(LAYOUTS)  # portrait and landscape
    assert any(s.camera.amp_step for s in sites) and not all(s.camera.amp_step for s in sites)


def test_draws_stay_physical_and_inside_the_class_borders() -> None:
    for s in _draws(200):
        cam, sky = s.camera, s.sky
        assert 0.15 <= cam.pixel_scale <= 0.30 and 0.25 <= cam.obscuration <= 0.5 and 0 <= cam.vignetting <= 0.15
        assert 0.8 <= cam.gain[0] <= 5 and 2.5 <= cam.rdnoise[0] <= 8 and 30000 <= cam.saturate <= 65535
        assert cam.amp_step <= 8  # the BGP amplifier problem starts at 30 ADU
        small = s.geometry("small")
        assert 4e6 < small.n_ccds * small.ny * small.nx < 8e6  # small stays cheap to simulate
        assert GOOD_SEEING[0] <= sky.good_seeing[0] < sky.good_seeing[1] <= GOOD_SEEING[1]
        assert BAD_SEEING[0] <= sky.bad_seeing[0] < sky.bad_seeing[1] <= BAD_SEEING[1]
        assert sky.gradient[1] + 3 * sky.moon_gradient < 0.3 / 2  # BGP gradients reach 0.3-3 x sky
        assert sky.red_fringe[1] < 0.05  # BGP fringes are 0.05-0.2 x sky


def test_camera_and_sky_reproduce_from_the_exposure_seed() -> None:
    seed = exposure_seeds(7, 1, "randomised")[0]
    a, b = RANDOMISED.for_exposure(seed), RANDOMISED.for_exposure(seed)
    assert a.camera == b.camera and a.sky == b.sky
    p = draw_params("Good", np.random.default_rng(seed), seed=seed, site=RANDOMISED)
    assert p.site == "randomised" and site_of(p).camera == a.camera
    assert a.sky.good_seeing[0] <= p.seeing_arcsec <= a.sky.good_seeing[1]
    assert (p.fringe > 0) == (p.filter in RED_FILTERS and a.sky.red_fringe[1] > 0)
    assert SITES["cfht"].for_exposure(seed) is SITES["cfht"]


def test_seeds_and_exposure_numbers_collide_with_no_other_site() -> None:
    ours = set(exposure_seeds(1, 50, "randomised"))
    for other in ("cfht", "unseen"):
        assert not ours & set(exposure_seeds(1, 50, other))
    numbers = {name: {expnum_for(s, i, site.expnum_base) for s in range(700) for i in (0, 9_999)}
               for name, site in SITES.items()}
    assert not numbers["randomised"] & (numbers["cfht"] | numbers["unseen"])


def test_rendering_is_reproducible(tmp_path: Path) -> None:
    seed = exposure_seeds(3, 1, "randomised")[0]
    pixels = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        row = simulate_one(tmp_path / run, 3, 0, seed, "tiny", None, 0.0, False, "BGP", site="randomised")
        with fits.open(tmp_path / run / row["file"]) as hdul:
            pixels.append(np.stack([h.data for h in hdul[1:]]))
    assert np.array_equal(*pixels)


def test_randomised_night_has_every_class_truth_only_in_manifest_and_reads_in_the_pipeline(tmp_path: Path) -> None:
    manifest = simulate_night(tmp_path, n=len(CLASSES), seed=4, size="tiny", site="randomised", every_class=True,
                              dead_ccd_rate=0.0, progress=False)
    truth = read_truth(manifest)
    assert {row["label"] for row in truth.values()} == set(CLASSES)
    settings = load_settings(workers=1)
    scales = set()
    for exposure_id, row in truth.items():
        site = RANDOMISED.for_exposure(int(row["seed"]))
        with fits.open(tmp_path / str(row["file"])) as hdul:
            assert hdul[0].header["PIXSCAL"] == site.camera.pixel_scale
            assert hdul[1].header["SATURATE"] == site.camera.saturate
            tiny = site.geometry("tiny")
            assert len(hdul) == 1 + tiny.n_ccds and hdul[1].data.shape == (tiny.ny, tiny.nx)
            text = " ".join(str(h.header).lower() for h in hdul)
            assert str(row["label"]).lower() not in text.split() and "seeing" not in text
        scales.add(site.camera.pixel_scale)
        prepared = prepare_exposure(tmp_path / str(row["file"]), settings)
        assert prepared.exposure_id == exposure_id and prepared.n_ccds == 4 and len(prepared.cutouts) > 0
    assert len(scales) == len(truth)


def test_unknown_size_fails_early(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown size"):
        simulate_night(tmp_path, n=1, seed=1, size="huge", site="randomised", progress=False)
