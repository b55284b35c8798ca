"""Simulator: determinism, classes, headers without truth, manifest, and the physics each class promises."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from astropy.io import fits  # noqa: E402
from astropy.wcs import WCS  # noqa: E402

from skyqa.service.config import DetectionConfig  # noqa: E402
from skyqa.service.pipeline.detection import detect  # noqa: E402
from skyqa.service.labels import Label  # noqa: E402
from skyqa.simulator import cli  # noqa: E402
from skyqa.simulator.exposure import simulate_exposure  # noqa: E402
from skyqa.simulator.night import simulate_night  # noqa: E402
from skyqa.simulator.params import BGP_SUBTYPES, CLASSES, ExposureParams, Geometry, draw_params  # noqa: E402
from skyqa.simulator.truth import read_truth  # noqa: E402

CASES = [(c, None) for c in CLASSES if c != Label.BGP] + [(str(Label.BGP), s) for s in BGP_SUBTYPES]
PRIMARY_KEYS = ("EXPNUM", "EXPTIME", "FILTER", "AIRMASS", "RA", "DEC", "DATE-OBS", "OBJECT", "INSTRUME", "PIXSCAL")
CCD_KEYS = ("EXTNAME", "CCDNAME", "GAIN", "RDNOISE", "SATURATE", "DETSEC", "DATASEC", "CTYPE1", "CRVAL1", "CD1_1")


def _params(label: str, seed: int = 3, subtype: str | None = None, **over: object) -> ExposureParams:
    p = draw_params(label, np.random.default_rng(seed), subtype=subtype)
    return dataclasses.replace(p, **over) if over else p


def _render(p: ExposureParams, seed: int = 1, size: str = "tiny") -> fits.HDUList:
    return simulate_exposure(p, size, np.random.default_rng(seed), compress=False)


@pytest.fixture(scope="module")
def exposures() -> dict[tuple[str, str | None], tuple[ExposureParams, fits.HDUList]]:
    out = {}
    for label, subtype in CASES:
        p = _params(label, subtype=subtype)
        out[(label, subtype)] = (p, _render(p))
    return out


def _sources(hdul: fits.HDUList, deblend_cont: float = 0.005) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bright, unsaturated detections per CCD, through the project's detector (sep keeps global buffer
    state that skyqa.service.pipeline.detection manages, so tests must not call sep.extract behind its back)."""
    out = []
    for hdu in hdul[1:]:
        data = hdu.data.astype(np.float32)
        det = detect(data, DetectionConfig(deblend_cont=deblend_cont))
        objs = det.objects
        keep = (objs["flux"] > 300 * det.rms) & (objs["peak"] + det.level < 50000) & (objs["flag"] == 0)
        out.append((objs[keep], data - det.level))
    return out


def _median_ab(hdul: fits.HDUList) -> float:
    objs = np.concatenate([o for o, _ in _sources(hdul)])
    assert objs.size >= 10
    return float(np.median(objs["a"] / objs["b"]))


def _median_size(hdul: fits.HDUList) -> float:
    objs = np.concatenate([o for o, _ in _sources(hdul)])
    assert objs.size >= 10
    return float(np.median(np.sqrt(objs["a"] * objs["b"])))


def test_geometry_sizes() -> None:
    assert Geometry.of("full") == Geometry(36, 4612, 2048)
    assert Geometry.of("small") == Geometry(36, 1024, 512)
    assert Geometry.of((2, 128, 96)) == Geometry(2, 128, 96)
    with pytest.raises(ValueError):
        Geometry.of("huge")
    hdul = _render(_params("Good"), size=(2, 128, 96))
    assert len(hdul) == 3 and hdul[2].data.shape == (128, 96)


def test_same_seed_same_pixels_other_seed_differs() -> None:
    p = _params("BT")
    a, b, c = _render(p, seed=5), _render(p, seed=5), _render(p, seed=6)
    for x, y in zip(a[1:], b[1:], strict=True):
        assert np.array_equal(x.data, y.data)
    assert not np.array_equal(a[1].data, c[1].data)


def test_every_class_renders(exposures) -> None:
    assert {label for label, _ in exposures} == set(CLASSES)
    for (label, subtype), (p, hdul) in exposures.items():
        assert (p.label, p.subtype or None) == (label, subtype)
        assert len(hdul) == 5
        for hdu in hdul[1:]:
            assert hdu.data.dtype == np.uint16 and hdu.data.shape == (512, 512)
            assert np.median(hdu.data) > 500  # bias + sky


def test_headers_present_and_no_truth_leak(exposures) -> None:
    keysets = set()
    for (label, subtype), (p, hdul) in exposures.items():
        primary = hdul[0].header
        assert hdul[0].data is None
        assert all(k in primary for k in PRIMARY_KEYS)
        assert primary["INSTRUME"] == "MegaPrime" and primary["PIXSCAL"] == 0.187
        assert primary["EXPNUM"] == p.expnum
        for i, hdu in enumerate(hdul[1:]):
            assert hdu.header["EXTNAME"] == f"ccd{i:02d}"
            assert all(k in hdu.header for k in CCD_KEYS)
            assert WCS(hdu.header).pixel_to_world_values(0, 0) is not None
        keysets.add(tuple(primary) + tuple(hdul[1].header))
        forbidden = {label.lower(), *(s.lower() for s in BGP_SUBTYPES)}
        for header in (primary, *(h.header for h in hdul[1:])):
            for value in header.values():
                assert not (isinstance(value, str) and value.strip().lower() in forbidden), value
            assert not any(w in str(header).lower() for w in ("seeing", "trail", "defocus", "label", "subtype"))
    assert len(keysets) == 1  # every class writes the same keywords


def test_exptime_overlaps_except_short_exposures() -> None:
    rng = np.random.default_rng(0)
    times = {c: [draw_params(c, rng).exptime for _ in range(40)] for c in CLASSES if c != Label.BGP}
    lo, hi = max(min(t) for t in times.values()), min(max(t) for t in times.values())
    assert hi - lo > 200
    assert max(draw_params("BGP", rng, subtype="short_exposure").exptime for _ in range(20)) <= 5


def test_dead_ccd_is_constant() -> None:
    p = draw_params("Good", np.random.default_rng(2), n_ccds=4, dead_ccd_rate=1.0)
    assert len(p.dead_ccds) == 1
    hdul = _render(p)
    dead = hdul[1 + p.dead_ccds[0]].data
    assert dead.min() == dead.max()
    live = [h.data for i, h in enumerate(hdul[1:]) if i not in p.dead_ccds]
    assert all(d.std() > 1 for d in live)


def test_trails_elongate_sources() -> None:
    good = _params("Good", exptime=300.0, filter="r", seeing_arcsec=0.8, trail_px=0.5)
    bt = dataclasses.replace(good, label="BT", trail_px=6.0)
    rbt = dataclasses.replace(good, label="RBT", trail_px=25.0)
    ab = [_median_ab(_render(p)) for p in (good, bt, rbt)]
    assert ab[0] + 0.05 < ab[1] and ab[1] + 0.5 < ab[2], ab


def test_bad_seeing_broader_than_good(exposures) -> None:
    good = _params("Good", exptime=300.0, filter="r", seeing_arcsec=0.8)
    bad = dataclasses.replace(good, label="BSeeing", seeing_arcsec=1.8)
    assert _median_size(_render(bad)) > 1.3 * _median_size(_render(good))


def test_bad_focus_donuts_have_central_dip() -> None:
    p = _params("BadFocus", exptime=300.0, filter="r", defocus=5.0, seeing_arcsec=0.7)
    stack = []
    for objs, sub in _sources(_render(p), deblend_cont=1.0):
        for o in objs:
            x, y = int(round(o["x"])), int(round(o["y"]))
            if 20 <= x < sub.shape[1] - 20 and 20 <= y < sub.shape[0] - 20:
                stack.append(sub[y - 20 : y + 21, x - 20 : x + 21] / o["flux"])
    assert len(stack) >= 5
    img = np.median(stack, axis=0)
    yy, xx = np.mgrid[-20:21, -20:21]
    r = np.hypot(xx, yy)
    centre = img[r <= 1.5].mean()
    ring = max(img[(r > k - 0.5) & (r <= k + 0.5)].mean() for k in range(3, 15))
    assert centre < 0.7 * ring


def test_night_manifest_files_and_parallel_determinism(tmp_path: Path) -> None:
    classes = {c: 1.0 for c in CLASSES}
    manifest = simulate_night(tmp_path / "a", n=3, seed=11, size="tiny", classes=classes, dead_ccd_rate=0.5,
                              progress=False)
    truth = read_truth(manifest)
    assert len(truth) == 3
    for exposure_id, row in truth.items():
        assert row["label"] in CLASSES and isinstance(row["dead_ccds"], tuple)
        path = manifest.parent / str(row["file"])
        assert path.name == f"{exposure_id}p.fits.fz"
        with fits.open(path) as hdul:
            assert isinstance(hdul[1], fits.CompImageHDU)
            assert hdul[1].compression_type == "RICE_1"
            assert str(hdul[0].header["EXPNUM"]) == exposure_id
            assert hdul[1].data.shape == (512, 512)
    other = simulate_night(tmp_path / "b", n=3, seed=11, size="tiny", classes=classes, dead_ccd_rate=0.5,
                           workers=2, progress=False)
    assert read_truth(other) == truth
    for row in truth.values():
        with fits.open(manifest.parent / str(row["file"])) as a, fits.open(other.parent / str(row["file"])) as b:
            assert all(np.array_equal(x.data, y.data) for x, y in zip(a[1:], b[1:], strict=True))


def test_cli_uncompressed(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--n", "1", "--seed", "4", "--size", "1,128,128",
                              "--classes", "Good=1", "--no-compress", "--no-progress"])
    assert cli.run(args) == 0
    (row,) = read_truth(tmp_path).values()
    assert row["label"] == "Good" and str(row["file"]).endswith("p.fits")
    with fits.open(tmp_path / str(row["file"])) as hdul:
        assert isinstance(hdul[1], fits.ImageHDU) and hdul[1].data.shape == (128, 128)


@pytest.mark.parametrize(("flags", "tile_rows"), [([], 1), (["--tile-rows", "32"], 32)])
def test_cli_tiles_one_row_as_fpack_by_default(tmp_path: Path, flags: list[str], tile_rows: int) -> None:
    """Sites get fpack files (RICE tiles of one row); 32-row tiles only when asked for."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--n", "1", "--seed", "4", "--size", "1,128,96",
                              "--classes", "Good=1", "--no-progress", *flags])
    assert cli.run(args) == 0
    (row,) = read_truth(tmp_path).values()
    with fits.open(tmp_path / str(row["file"]), disable_image_compression=True) as hdul:
        header = hdul[1].header
        assert (header["ZCMPTYPE"], header["ZTILE1"], header["ZTILE2"]) == ("RICE_1", 96, tile_rows)
