"""skyqa.service.pipeline.bands: which row bands are searched, and the early stop on real files."""

from __future__ import annotations

import numpy as np
import pytest
from fits_factory import Stars, write_exposure

from skyqa.service.config import DetectionConfig, Settings
from skyqa.service.pipeline.bands import (MIN_BANDS_TO_SPLIT, MIN_CORE_ROWS, NEED_MARGIN, BandSearch, band_read,
                                          band_slices, merge_adjacent, spread_order)
from skyqa.service.pipeline.preprocess import prepare_exposure


def test_band_slices_cover_the_ccd():
    bands = band_slices(4612, 256)
    assert len(bands) == 18 and bands[0].start == 0 and bands[-1].stop == 4612
    assert all(a.stop == b.start for a, b in zip(bands[:-1], bands[1:]))
    assert band_slices(100, 256) == [slice(0, 100)]


@pytest.mark.parametrize("n", [1, 2, 5, 18])
def test_spread_order_is_a_deterministic_spread_permutation(n):
    order = spread_order(n, seed=11)
    assert sorted(order) == list(range(n)) and order == spread_order(n, seed=11)
    for k in range(2, n + 1):  # every prefix leaves no wrapped gap larger than about n / k
        taken = sorted(order[:k])
        gaps = np.diff([*taken, taken[0] + n])
        assert gaps.max() <= 2 * np.ceil(n / k)


def test_spread_order_start_depends_on_the_seed():
    assert len({spread_order(18, seed)[0] for seed in range(20)}) > 5


@pytest.mark.parametrize(("core", "read", "searched"), [
    (slice(1000, 1096), slice(952, 1144), slice(27, 165)),  # 96 + 2 x 21 rows -> 3 meshes, context on both sides
    (slice(0, 96), slice(0, 192), slice(0, 117)),  # at the CCD's edge, grown into the CCD
    (slice(4580, 4612), slice(4484, 4612), slice(75, 128)),
    (slice(1000, 1256), slice(968, 1288), slice(11, 309)),
    (slice(0, 4612), slice(0, 4612), slice(0, 4612)),  # the whole CCD as it is
])
def test_band_read_is_whole_meshes_around_the_searched_rows(core, read, searched):
    assert band_read(core, 4612, 21, 64) == (read, searched)
    assert read.start <= core.start - 21 or read.start == 0
    assert read.stop >= core.stop + 21 or read.stop == 4612


@pytest.mark.parametrize(("core", "read", "searched"), [
    (slice(1000, 1096), slice(984, 1112), slice(6, 122)),  # 96 + 2 x 16 cutout rows -> 2 meshes; 10 rows searched
    (slice(0, 96), slice(0, 128), slice(0, 106)),
    (slice(1000, 1256), slice(968, 1288), slice(22, 298)),
])
def test_band_read_holds_every_counted_source_s_cutout_beyond_a_narrower_search(core, read, searched):
    assert band_read(core, 4612, 10, 64, cutout=16) == (read, searched)
    assert read.start <= core.start - 16 or read.start == 0
    assert read.stop >= core.stop + 16


def test_merge_adjacent():
    assert merge_adjacent([slice(5, 9), slice(0, 5), slice(12, 20)]) == [slice(0, 9), slice(12, 20)]


def test_search_stops_when_enough_sources():
    search = BandSearch(4612, DetectionConfig(band_rows=256, first_rows=None, min_bands=2, enough_sources=300), seed=3)
    first = search.next_cores()
    assert len(first) == 2 and sum(c.stop - c.start for c in first) == 512
    assert abs(first[0].start - first[1].start) >= 4612 // 3  # spread along the CCD
    search.record(400)
    assert search.next_cores() == [] and search.fraction == pytest.approx(512 / 4612, abs=0.01)


def test_search_takes_what_the_density_needs():
    search = BandSearch(4612, DetectionConfig(band_rows=256, first_rows=None, min_bands=2, enough_sources=300), seed=3)
    search.next_cores()
    search.record(200)  # ~100 a band: the rows of one more band, with the margin
    assert sum(c.stop - c.start for c in search.next_cores()) == 256 * NEED_MARGIN
    search.record(100)
    assert search.next_cores() == []


def test_sparse_ccd_falls_back_to_every_row():
    search = BandSearch(4612, DetectionConfig(band_rows=256, first_rows=None, min_bands=2, enough_sources=300), seed=3)
    first = search.next_cores()
    search.record(10)  # ~90 on the whole CCD: never enough
    rest = search.next_cores()
    assert sorted(r for c in first + rest for r in range(c.start, c.stop)) == list(range(4612))
    assert len(rest) <= 3  # the remaining bands merged into contiguous reads
    search.record(0)
    assert search.next_cores() == [] and search.fraction == 1.0


def test_first_rows_then_what_the_density_needs():
    """A crowded CCD is done in `first_rows`; elsewhere the next search takes the missing rows, continuing the band."""
    cfg = DetectionConfig(band_rows=256, first_rows=128, enough_sources=150)
    crowded = BandSearch(4612, cfg, seed=3)
    probe = crowded.next_cores()
    assert len(probe) == 1 and probe[0].stop - probe[0].start == 128
    crowded.record(400)
    assert crowded.next_cores() == [] and crowded.fraction == pytest.approx(128 / 4612)

    ordinary = BandSearch(4612, cfg, seed=3)
    (first,) = ordinary.next_cores()
    ordinary.record(100)  # 50 missing at 1.28 rows a source
    (more,) = ordinary.next_cores()
    assert more.start == first.stop and more.stop - more.start == np.ceil(50 * 1.28 * NEED_MARGIN)
    ordinary.record(40)  # 10 missing: the smallest search (or the band's whole rest, rather than leave a sliver)
    tail = ordinary.next_cores()
    assert MIN_CORE_ROWS <= sum(c.stop - c.start for c in tail) < 2 * MIN_CORE_ROWS and tail[0].start == more.stop
    ordinary.record(20)
    assert ordinary.next_cores() == []


@pytest.mark.parametrize("seed", range(20))
def test_searches_are_never_slivers_and_never_overlap(seed):
    rng = np.random.default_rng(seed)
    search = BandSearch(4612, DetectionConfig(first_rows=int(rng.integers(32, 300)), enough_sources=150), seed=seed)
    rows = []
    while cores := search.next_cores():
        rows += [r for c in cores for r in range(c.start, c.stop)]
        assert all(c.stop - c.start >= MIN_CORE_ROWS for c in cores)
        search.record(int(rng.integers(0, 60)))
    assert len(rows) == len(set(rows)) == search.searched_rows


def test_first_rows_on_a_sparse_ccd_fall_back_to_every_row():
    search = BandSearch(4612, DetectionConfig(band_rows=256, first_rows=128, enough_sources=150), seed=5)
    first = search.next_cores()
    search.record(2)  # ~72 on the whole CCD
    rest = search.next_cores()
    assert sorted(r for c in first + rest for r in range(c.start, c.stop)) == list(range(4612))


def test_reference_and_row_cap():
    assert BandSearch(4612, DetectionConfig(enough_sources=None), seed=0).next_cores() == [slice(0, 4612)]
    capped = BandSearch(4612, DetectionConfig(band_rows=256, enough_sources=None, max_searched_rows=1024), seed=0)
    assert 1024 - 257 < sum(c.stop - c.start for c in capped.next_cores()) <= 1024 and capped.next_cores() == []


def test_short_ccd_is_searched_whole():
    cfg = DetectionConfig(band_rows=256, enough_sources=10)
    assert BandSearch(256 * MIN_BANDS_TO_SPLIT - 1, cfg, seed=0).next_cores() == [slice(0, 256 * MIN_BANDS_TO_SPLIT - 1)]
    assert len(BandSearch(256 * MIN_BANDS_TO_SPLIT, cfg, seed=0).next_cores()) == 1


def _settings(**detection) -> Settings:
    return Settings(workers=1, detection={"band_rows": 128, **detection})


def test_crowded_ccd_is_searched_in_part(tmp_path):
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=(2048, 256), stars=Stars(n=1200, sigma=1.5))
    part = prepare_exposure(path, _settings(enough_sources=150))
    full = prepare_exposure(path, _settings(enough_sources=None))
    assert part.searched_fraction < 0.5 and full.searched_fraction == 1.0
    assert part.weight == pytest.approx(full.weight, rel=0.15)
    assert part.cutouts.shape == full.cutouts.shape == (200, 32, 32, 1)
    again = prepare_exposure(path, _settings(enough_sources=150))
    assert np.array_equal(again.cutouts, part.cutouts) and again.weight == part.weight


def test_sparse_ccd_is_searched_in_every_row(tmp_path):
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=1, shape=(2048, 256), stars=Stars(n=60, sigma=1.5))
    part = prepare_exposure(path, _settings(enough_sources=150))
    full = prepare_exposure(path, _settings(enough_sources=None))
    assert part.searched_fraction == 1.0 and part.weight == pytest.approx(full.weight, rel=0.02)
