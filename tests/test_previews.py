"""Focal-plane previews: mosaic layout (DETSEC or a grid), binning from the rows the pipeline read plus a strided
read (after the verdict; a corrupt tile there costs only the preview), size caps, the store (atomic, hostile ids
refused) and `skyqa classify` writing them."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import structlog
from astropy.io import fits
from PIL import Image

from skyqa.cli import main
from skyqa.service.config import Settings
from skyqa.service.pipeline.exposure import ExposureError, describe_exposure, open_exposure
from skyqa.service.pipeline.ids import InvalidId
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.service.previews.image import Mosaic, assemble, bin_factor, missing_rows, render
from skyqa.service.previews.store import PreviewStore
from tests.fits_factory import Stars, write_exposure


def test_ccds_are_placed_by_detsec_flipped_as_read_out_and_on_a_grid_without_it() -> None:
    left, right = np.full((4, 2), 1.0, np.float32), np.arange(8, dtype=np.float32).reshape(4, 2)
    placed = assemble(Mosaic(2, [(1, 4, 1, 8), (8, 5, 1, 8)], [left, right], (8, 4)))
    assert placed.shape == (4, 4)
    assert (placed[:, :2] == 1.0).all() and (placed[:, 2:] == right[:, ::-1]).all()  # x1 > x2: flipped
    grid = assemble(Mosaic(2, [None, None, None], [left, right, None], (8, 4)))
    assert grid.shape == (8, 4)  # 2 x 2 cells of 4 x 2 binned pixels
    assert (grid[:4, :2] == left).all() and (grid[:4, 2:] == right).all() and np.isnan(grid[4:]).all()
    assert bin_factor([(1, 2048, 1, 4612), (2049, 4096, 1, 4612)], [(4612, 2048)] * 2, 1024) == 5


@pytest.mark.parametrize("workers", [1, 2])
def test_thumbnail_from_searched_bands_and_strided_rows_matches_the_whole_ccd(tmp_path: Path, workers: int) -> None:
    """Only ~256 of 1,200 rows are searched: the others come from the strided read (by the caller of `result`, or
    by the workers behind the CCDs), and detection (which subtracts the background in place) must not have touched
    the rows taken from the bands."""
    path = write_exposure(tmp_path / "tall.fits.fz", n_ccds=2, shape=(1200, 200), stars=Stars(n=80), seed=4,
                          header={"DETSEC": "[1:200,1:1200]"})
    settings = Settings(workers=workers, detection={"max_searched_rows": 256, "band_rows": 128})
    pending = prepare_exposure(path, settings, preview_side=150).mosaic
    assert len(pending.futures) == (2 if workers == 2 else 0)  # queued in the pool, one part a worker
    mosaic = pending.result()
    factor = mosaic.factor
    assert factor == 8 and mosaic.sections == [(1, 200, 1, 1200)] * 2
    for i, thumbnail in enumerate(mosaic.thumbnails, start=1):
        full = fits.getdata(path, i).astype(np.float32)
        rows = full[factor // 2 :: factor][: 1200 // factor, : 200 // factor * factor]
        np.testing.assert_allclose(thumbnail, rows.reshape(len(rows), -1, factor).mean(axis=2), rtol=1e-6)


def test_a_corrupt_tile_outside_the_searched_rows_costs_the_preview_not_the_verdict(tmp_path: Path) -> None:
    from skyqa.service.pipeline.classify import Classifier

    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=1, shape=(1200, 200), stars=Stars(n=80), seed=4,
                          expnum=77, integer=True)
    settings = Settings(workers=1, detection={"max_searched_rows": 256, "band_rows": 128},
                        previews={"location": tmp_path / "previews", "max_side": 150})
    pending = prepare_exposure(path, settings, preview_side=150).mosaic
    row = missing_rows(pending.known[0], pending.ccds[0].shape, pending.factor)[-1]  # read for the preview alone
    with open_exposure(path) as opened:
        tiles = opened.row_tiles(1)
    assert tiles is not None and tiles.tile_rows == 1
    data = bytearray(path.read_bytes())
    start = tiles.heap + int(tiles.offsets[row])
    data[start : start + int(tiles.sizes[row])] = bytes(int(tiles.sizes[row]))  # RICE cannot decode it
    path.write_bytes(bytes(data))

    classifier = Classifier(settings)
    try:
        with structlog.testing.capture_logs() as logs:
            assert classifier.classify(path).exposure_id == "77"
            classifier.finish_preview()
    finally:
        classifier.close()
    assert [e["exposure_id"] for e in logs if e["event"] == "preview_not_written"] == ["77"]
    assert PreviewStore(tmp_path / "previews").get("77") is None
    with pytest.raises(ExposureError, match="decompression"):  # the preview's own read does meet the bad tile
        prepare_exposure(path, settings, preview_side=150).mosaic.result()


def test_preview_respects_its_caps(tmp_path: Path) -> None:
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=4, shape=(600, 300), seed=2)
    primary, ccds = describe_exposure(path)
    mosaic = prepare_exposure(path, Settings(workers=1), preview_side=200).mosaic.result()
    for fmt, cap in (("webp", 12_000), ("png", 12_000), ("webp", 1_000_000)):
        data = render(mosaic, fmt, 90, cap)
        image = Image.open(io.BytesIO(data))
        assert image.format == fmt.upper() and len(data) <= cap and max(image.size) <= 200
    assert len(ccds) == 4 and primary is not None


def test_store_is_atomic_per_exposure_and_refuses_hostile_ids(tmp_path: Path) -> None:
    store = PreviewStore(tmp_path / "previews")
    assert store.get("2970007") is None  # nothing there yet (no directory either)
    store.put("2970007", b"png-bytes", "png")
    store.put("2970007", b"webp-bytes", "webp")  # a re-processed exposure replaces its preview
    preview = store.get("2970007")
    assert (preview.data, preview.media_type) == (b"webp-bytes", "image/webp")
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["2970007.webp"]
    assert (tmp_path / "previews" / "2970007.webp").stat().st_mode & 0o777 == 0o644  # readable by the web app
    for hostile in ("../../etc/passwd", "/etc/passwd", "a/b", "x\0y", ".hidden", "a" * 2000, ""):
        with pytest.raises(InvalidId):
            store.get(hostile)
        with pytest.raises(InvalidId):
            store.put(hostile, b"x", "png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previews"]


def test_the_verdict_does_not_wait_for_its_preview(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import skyqa.service.pipeline.classify as classify_module

    rendering, release = threading.Event(), threading.Event()

    def slow_render(*args: object) -> bytes:
        rendering.set()
        assert release.wait(60)
        return render(*args)

    monkeypatch.setattr(classify_module, "render", slow_render)
    paths = [write_exposure(tmp_path / f"{n}.fits.fz", n_ccds=2, shape=(300, 200), expnum=n, seed=3) for n in (1, 2)]
    classifier = classify_module.Classifier(Settings(workers=1, previews={"location": tmp_path / "previews"}))
    store = PreviewStore(tmp_path / "previews")
    try:
        assert classifier.classify(paths[0]).exposure_id == "1"  # out while its preview is still being rendered
        assert rendering.wait(60) and store.get("1") is None
        release.set()
        assert classifier.finish_preview() > 0 and store.get("1") is not None
        classifier.classify(paths[1])
    finally:
        classifier.close()  # waits for the last preview
    assert store.get("2") is not None and classifier.finish_preview() is None


def test_classify_writes_previews_and_a_read_only_location_costs_no_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=(300, 200), expnum=4242, seed=3)
    monkeypatch.setenv("SKYQA_PREVIEWS__LOCATION", str(tmp_path / "previews"))
    monkeypatch.setenv("SKYQA_WORKERS", "1")
    assert main(["classify", str(path), "--json"]) == 0
    preview = PreviewStore(tmp_path / "previews").get("4242")
    assert preview.media_type == "image/webp" and min(Image.open(io.BytesIO(preview.data)).size) > 0

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SKYQA_PREVIEWS__LOCATION", str(blocker / "previews"))  # cannot be created
    capsys.readouterr()
    assert main(["classify", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"exposure_id":"4242"' in captured.out.replace(" ", "") and "preview_not_written" in captured.err
