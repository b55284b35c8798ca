"""Pixel reads of tile-compressed HDUs (RICE rows decoded directly, others through cfitsio) agree with astropy's,
and fail as ExposureError."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits
from fits_factory import write_exposure

from skyqa.service.pipeline.exposure import (ExposureError, describe_exposure, open_exposure, read_ccd, read_rows,
                                             read_sampled_rows)


def _retile(src, dst, tile_rows: int):
    """The same pixels with RICE tiles of `tile_rows` rows (1 = what fpack writes)."""
    with fits.open(src) as hdul:
        hdus = [fits.CompImageHDU(h.data, h.header, compression_type="RICE_1",
                                  tile_shape=(tile_rows, h.data.shape[1])) for h in hdul[1:]]
        fits.HDUList([fits.PrimaryHDU(header=hdul[0].header), *hdus]).writeto(dst)
    return dst


@pytest.mark.parametrize("tile_rows", [1, 32])
@pytest.mark.parametrize("integer", [True, False])
def test_tile_reads_equal_astropy(tmp_path, tile_rows, integer):
    """uint16 RICE rows (raw MegaCam, fpack) are decoded directly; quantised floats go through cfitsio."""
    plain = write_exposure(tmp_path / "e.fits", n_ccds=3, shape=(96, 40), compress=False, integer=integer,
                           nan_ccds=() if integer else (1,), nan_pixels=0 if integer else 5,
                           header={"DATASEC": "[3:38,2:90]"})
    path = _retile(plain, tmp_path / "e.fits.fz", tile_rows)
    for info in describe_exposure(path)[1]:
        (y0, x0), (ny, nx) = info.origin, info.shape
        with fits.open(path) as hdul:
            expected = hdul[info.hdu_index].data[y0 : y0 + ny, x0 : x0 + nx].astype(np.float32)
        rows = [0, 1, 2, 40, 41, 77, ny - 1]
        with open_exposure(path) as exposure:
            whole, band, tail = read_rows(exposure, info, [None, slice(10, 43), slice(80, 200)])
            sampled = read_sampled_rows(exposure, info, rows)
            assert (exposure.row_tiles(info.hdu_index) is not None) == integer  # which reader was taken
        for got, want in ((whole, expected), (band, expected[10:43]), (tail, expected[80:]), (sampled, expected[rows])):
            assert got.dtype == np.float32 and got.dtype.isnative and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)


def test_gzipped_file_is_read_by_astropy(tmp_path):
    """cfitsio would inflate a whole .fits.gz in memory: those stay with astropy, same pixels."""
    path = write_exposure(tmp_path / "e.fits", n_ccds=2, shape=(64, 48), compress=False)
    with path.open("rb") as src, gzip.open(tmp_path / "e.fits.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    info = describe_exposure(path)[1][1]
    with open_exposure(tmp_path / "e.fits.gz") as exposure:
        band = read_rows(exposure, info, [slice(5, 20)])[0]
        assert exposure.tiles() is None and exposure.row_tiles(info.hdu_index) is None
    np.testing.assert_array_equal(band, read_ccd(path, info)[5:20])


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("integer", [True, False])
def test_cut_tile_data_is_unreadable(tmp_path, integer):
    path = _retile(write_exposure(tmp_path / "e.fits", n_ccds=2, shape=(128, 64), compress=False, integer=integer),
                   tmp_path / "e.fits.fz", 1)
    info = describe_exposure(path)[1][-1]
    with fits.open(path, disable_image_compression=True) as hdul:
        heap_middle = hdul[info.hdu_index].fileinfo()["datLoc"] + hdul[info.hdu_index].fileinfo()["datSpan"] // 2
    with path.open("r+b") as f:
        f.truncate(heap_middle)
    with pytest.raises(ExposureError) as err:
        read_ccd(path, info, slice(100, 128))
    assert err.value.reason == "unreadable"


@pytest.mark.parametrize("where", ["tile bytes", "descriptor"])
def test_corrupt_rice_tile_is_unreadable(tmp_path, where):
    """Garbage in a tile's bytes, or a tile size past the end of the file: `unreadable`, never a crash, a
    gigabyte-sized read or wrong pixels."""
    path = _retile(write_exposure(tmp_path / "e.fits", n_ccds=1, shape=(64, 48), compress=False, integer=True),
                   tmp_path / "e.fits.fz", 1)
    info = describe_exposure(path)[1][0]
    with fits.open(path, disable_image_compression=True) as hdul:
        header = hdul[info.hdu_index].header
        table = hdul[info.hdu_index].fileinfo()["datLoc"]
        heap = table + header.get("THEAP", header["NAXIS1"] * header["NAXIS2"])
    with path.open("r+b") as f:
        if where == "tile bytes":
            f.seek(heap)
            f.write(b"\xff" * 4000)
        else:
            f.seek(table)  # the first tile's (size, offset) descriptor
            f.write((2**31 - 1).to_bytes(4, "big"))
    with pytest.raises(ExposureError) as err:
        read_ccd(path, info, slice(0, 10))
    assert err.value.reason == "unreadable"


@pytest.mark.parametrize("tile_rows", [1, 32])
def test_signed_rice_rows_with_a_partial_last_tile(tmp_path, tile_rows):
    """int16 without BZERO (negative values) and a last tile shorter than the others decode like astropy."""
    data = np.random.default_rng(2).integers(-3000, 3000, (50, 40)).astype(np.int16)
    path = tmp_path / "s.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1",
                                                       tile_shape=(tile_rows, 40))]).writeto(path)
    info = describe_exposure(path)[1][0]
    with open_exposure(path) as exposure:
        whole, tail = read_rows(exposure, info, [None, slice(31, 50)])
        sampled = read_sampled_rows(exposure, info, [0, 33, 49])
        assert exposure.row_tiles(info.hdu_index) is not None
    np.testing.assert_array_equal(whole, data.astype(np.float32))
    np.testing.assert_array_equal(tail, data[31:].astype(np.float32))
    np.testing.assert_array_equal(sampled, data[[0, 33, 49]].astype(np.float32))
