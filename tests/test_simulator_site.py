"""The unseen site: a second simulator configuration that really differs in camera, sky and seeds,
still produces the six classes with truth only in the manifest, and leaves the default site's pixels
(the shipped models' training data) untouched."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skyqa.service.labels import Label
from skyqa.service.config import load_settings
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.simulator import sky
from skyqa.simulator.exposure import simulate_exposure
from skyqa.simulator.night import exposure_seeds, simulate_night
from skyqa.simulator.params import BAD_SEEING, CLASSES, GOOD_SEEING, RED_FILTERS, draw_params, expnum_for
from skyqa.simulator.site import SITES, get_site
from skyqa.simulator.truth import read_truth

CFHT, UNSEEN = SITES["cfht"], SITES["unseen"]


def test_unseen_camera_differs_in_every_respect() -> None:
    a, b = CFHT.camera, UNSEEN.camera
    for name in ("pixel_scale", "obscuration", "gap_px", "gain", "rdnoise", "bias", "saturate", "amp_step",
                 "zeropoint_offset", "vignetting", "detector_seed", "telescope", "instrument"):
        assert getattr(a, name) != getattr(b, name), name
    for size in ("small", "full"):
        ga, gb = CFHT.geometry(size), UNSEEN.geometry(size)
        assert ga.n_ccds != gb.n_ccds and (ga.ny, ga.nx) != (gb.ny, gb.nx)
    chips_a, chips_b = CFHT.mosaic("small").chips, UNSEEN.mosaic("small").chips
    assert min(c.gain for c in chips_b) > max(c.gain for c in chips_a)
    assert min(c.rdnoise for c in chips_b) > min(c.rdnoise for c in chips_a)
    assert any(c.amp_step for c in chips_b) and not any(c.amp_step for c in chips_a)


def test_unseen_sky_differs_but_stays_inside_the_class_borders() -> None:
    a, b = CFHT.sky, UNSEEN.sky
    for name in ("good_seeing", "bad_seeing", "dark_sky", "moon", "star_density", "galaxy_density", "gradient",
                 "red_fringe"):
        assert getattr(a, name) != getattr(b, name), name
    assert GOOD_SEEING[0] <= b.good_seeing[0] < b.good_seeing[1] <= GOOD_SEEING[1]
    assert BAD_SEEING[0] <= b.bad_seeing[0] < b.bad_seeing[1] <= BAD_SEEING[1]
    assert a.gradient == a.red_fringe == (0.0, 0.0)  # the default sky has no natural gradient or fringes


def test_natural_sky_in_every_unseen_exposure_far_below_bgp() -> None:
    rng = np.random.default_rng(0)
    draws = [draw_params(label, rng, site=UNSEEN) for label in CLASSES for _ in range(30)]
    assert all(p.site == "unseen" for p in draws)
    assert all(0 < p.sky_gradient < 0.1 for p in draws)  # BGP gradients reach 0.3-3 x sky
    assert all((p.fringe > 0) == (p.filter in RED_FILTERS) for p in draws)
    assert max(p.fringe for p in draws) < 0.05  # BGP fringes are 0.05-0.2 x sky
    good = [p for p in draws if p.label == Label.GOOD]
    assert all(UNSEEN.sky.good_seeing[0] <= p.seeing_arcsec <= UNSEEN.sky.good_seeing[1] for p in good)
    default = [draw_params(label, rng) for label in CLASSES for _ in range(5)]
    assert all(p.site == "cfht" and p.sky_gradient == 0 and p.fringe == 0 for p in default)


def test_vignetting_and_gradient_shape_the_unseen_background() -> None:
    mosaic = UNSEEN.mosaic("tiny")
    centre_chip, corner_chip = mosaic.chips[0], mosaic.chips[-1]
    corner = sky.vignetting(corner_chip, mosaic)
    assert corner is not None and corner.min() == pytest.approx(1 - UNSEEN.camera.vignetting, abs=0.01)
    assert sky.vignetting(centre_chip, CFHT.mosaic("tiny")) is None
    p = dataclasses.replace(draw_params("Good", np.random.default_rng(1), site=UNSEEN), filter="r", fringe=0.0,
                            sky_gradient=0.04, sky_gradient_angle_deg=0.0)
    pat = sky.draw_patterns(p, mosaic, np.random.default_rng(2))
    level = sky.sky_adu(p)
    left = sky.background(p, mosaic.chips[0], mosaic, pat)  # grid column 0 ...
    right = sky.background(p, mosaic.chips[1], mosaic, pat)  # ... and column 1: the sky rises along x
    assert right.mean() > left.mean()
    span = np.concatenate([left, right], axis=1)
    assert (span.max() - span.min()) / level < 0.04 and np.allclose(left[:, 0], left[0, 0])
    flat = sky.background(dataclasses.replace(p, site="cfht", sky_gradient=0.0), CFHT.mosaic("tiny").chips[0],
                          CFHT.mosaic("tiny"), pat)
    assert flat.min() == flat.max()


def test_seed_family_and_exposure_numbers_are_the_sites_own() -> None:
    assert not set(exposure_seeds(1, 50)) & set(exposure_seeds(1, 50, "unseen"))
    assert exposure_seeds(1, 5, "unseen") == exposure_seeds(1, 5, "unseen")
    own = {expnum_for(s, i) for s in range(700) for i in (0, 9_999)}
    assert not own & {expnum_for(s, i, UNSEEN.expnum_base) for s in range(700) for i in (0, 9_999)}
    with pytest.raises(ValueError, match="unknown site"):
        get_site("nowhere")


def test_default_site_pixels_unchanged() -> None:
    """The shipped models were trained on these pixels: the site refactor must not move one of them
    (the digest is the one the simulator gave before sites existed)."""
    digest = hashlib.sha256()
    for label, subtype in (("Good", None), ("BGP", "fringing"), ("BGP", "gradient")):
        rng = np.random.default_rng(exposure_seeds(5, 1)[0])
        p = draw_params(label, rng, subtype=subtype, n_ccds=2)
        for hdu in simulate_exposure(p, (2, 96, 128), rng, compress=False)[1:]:
            digest.update(hdu.data.tobytes())
    assert digest.hexdigest() == "36c862bd11de1629aa1681b881f188708f05355d33d1de6f938abc9877cc7f3b"


def test_unseen_night_has_every_class_truth_only_in_manifest_and_reads_in_the_pipeline(tmp_path: Path) -> None:
    manifest = simulate_night(tmp_path, n=len(CLASSES), seed=3, size="tiny", site="unseen", every_class=True,
                              dead_ccd_rate=0.0, progress=False)
    truth = read_truth(manifest)
    assert {row["label"] for row in truth.values()} == set(CLASSES)
    assert {row["site"] for row in truth.values()} == {"unseen"}
    settings = load_settings(workers=1)
    metrics = {}
    for exposure_id, row in truth.items():
        path = tmp_path / str(row["file"])
        with fits.open(path) as hdul:
            primary = hdul[0].header
            assert len(hdul) == 1 + UNSEEN.geometry("tiny").n_ccds
            assert primary["INSTRUME"] == "UnseenCam" and primary["PIXSCAL"] == UNSEEN.camera.pixel_scale
            assert hdul[1].header["SATURATE"] == UNSEEN.camera.saturate
            assert hdul[1].data.shape == (UNSEEN.geometry("tiny").ny, UNSEEN.geometry("tiny").nx) == (384, 640)
            assert max(int(h.data.max()) for h in hdul[1:]) <= UNSEEN.camera.saturate
            text = " ".join(str(h.header).lower() for h in hdul)
            assert str(row["label"]).lower() not in text.split() and "seeing" not in text
        prepared = prepare_exposure(path, settings)
        assert prepared.exposure_id == exposure_id and prepared.n_ccds == 4 and len(prepared.cutouts) > 0
        metrics[row["label"]] = (float(row["seeing_arcsec"]), prepared.metrics)
    # the service measures through the camera's own pixel scale: seeing in arcsec, trails as elongation
    seeing, good = metrics["Good"]
    assert 0.7 < good.fwhm_arcsec / seeing < 1.5
    assert metrics["BSeeing"][1].fwhm_arcsec > 1.5 * good.fwhm_arcsec
    assert metrics["RBT"][1].elongation > 2 > 1.2 > good.elongation
