"""skyqa.service.pipeline.exposure: headers, reads, dead CCDs and every way a file can be unusable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from astropy.io import fits
from fits_factory import write_exposure

from skyqa.service.pipeline.exposure import (
    CCDInfo,
    ExposureError,
    describe_exposure,
    exposure_id,
    fill_nans,
    header_pixel_scale,
    is_dead,
    read_ccd,
)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("n_ccds", [1, 40])
def test_describe_and_read(tmp_path, compress, n_ccds):
    shape = (64, 48) if n_ccds == 40 else (128, 64)
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=n_ccds, shape=shape, compress=compress)
    primary, ccds = describe_exposure(path)
    assert [c.hdu_index for c in ccds] == list(range(1, n_ccds + 1))
    assert {c.shape for c in ccds} == {shape}
    assert ccds[0].extname.lower() == "ccd00"
    data = read_ccd(path, ccds[-1])
    assert data.dtype == np.float32 and data.dtype.isnative and data.flags.c_contiguous
    assert data.shape == shape and 900 < np.median(data) < 1100
    np.testing.assert_array_equal(read_ccd(path, ccds[-1], slice(10, 30)), data[10:30])


@pytest.mark.parametrize("compress", [True, False])
def test_read_uint16_with_bzero(tmp_path, compress):
    """Raw MegaCam CCDs are BITPIX 16 with BZERO 32768 (not memory-mappable): read as float32."""
    path = write_exposure(tmp_path / "e.fits", n_ccds=2, shape=(64, 48), compress=compress, integer=True)
    info = describe_exposure(path)[1][1]
    data = read_ccd(path, info)
    assert data.dtype == np.float32 and 900 < np.median(data) < 1100
    np.testing.assert_array_equal(read_ccd(path, info, slice(5, 9)), data[5:9])


def test_exposure_id(tmp_path):
    assert exposure_id("/x/2345678p.fits.fz", fits.Header()) == "2345678p"
    assert exposure_id("a.fits", fits.Header()) == "a" and exposure_id("b.fz", fits.Header()) == "b"
    path = write_exposure(tmp_path / "e.fits", n_ccds=1, shape=(64, 64), expnum=1234567)
    assert exposure_id(path, describe_exposure(path)[0]) == "1234567"


def test_header_facts(tmp_path):
    cards = {"SATURATE": 40000.0, "CD1_1": -5.1944e-5, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": 5.1944e-5}
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=1, shape=(64, 64), header=cards)
    info = describe_exposure(path)[1][0]
    assert info.saturate == 40000.0 and info.pixel_scale == pytest.approx(0.187, rel=1e-3)
    assert header_pixel_scale(fits.Header({"PIXSCAL1": 0.185})) == 0.185
    assert header_pixel_scale(fits.Header()) is None


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("keep", [0.3, 0.7, 0.999])
def test_truncated(tmp_path, compress, keep):
    path = write_exposure(tmp_path / "e.fits.fz", n_ccds=3, shape=(128, 64), compress=compress)
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(ExposureError) as err:
        describe_exposure(path)
    assert err.value.reason == "truncated"


def test_truncated_inside_primary_header(tmp_path):
    path = write_exposure(tmp_path / "e.fits", n_ccds=1, shape=(64, 64))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ExposureError, match="truncated"):
        describe_exposure(path)


@pytest.mark.parametrize("content", [b"", b"not a fits file\n" * 400, b"\x89PNG\r\n\x1a\n" + bytes(5000)])
def test_not_fits(tmp_path, content):
    path = tmp_path / "e.fits"
    path.write_bytes(content)
    with pytest.raises(ExposureError) as err:
        describe_exposure(path)
    assert err.value.reason == "not_fits"


def test_not_found(tmp_path):
    with pytest.raises(ExposureError) as err:
        describe_exposure(tmp_path / "missing.fits.fz")
    assert err.value.reason == "not_found"


def test_no_ccd_hdus(tmp_path):
    path = tmp_path / "e.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.zeros(3))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with pytest.raises(ExposureError) as err:
        describe_exposure(path)
    assert err.value.reason == "no_ccd_hdus"


def test_unreadable_hdu(tmp_path):
    path = write_exposure(tmp_path / "e.fits", n_ccds=1, shape=(64, 64))
    with pytest.raises(ExposureError) as err:
        read_ccd(path, CCDInfo(hdu_index=5, extname="ccd05", shape=(64, 64)))
    assert err.value.reason == "unreadable"


def test_error_pickles_with_reason():
    err = pickle.loads(pickle.dumps(ExposureError("truncated", "cut short")))
    assert err.reason == "truncated" and str(err) == "truncated: cut short"
    assert ExposureError("no_usable_ccd").message == "no usable ccd"


def test_is_dead():
    rng = np.random.default_rng(1)
    live = (1000 + 5 * rng.standard_normal((64, 64))).astype(np.float32)
    assert not is_dead(live)
    assert is_dead(np.zeros((64, 64), np.float32))
    assert is_dead(np.full((64, 64), 812.0, np.float32))
    assert is_dead(np.full((64, 64), np.nan, np.float32))
    hot = np.zeros((256, 256), np.float32)
    hot[::97, ::89] = 6e4  # a few hot pixels on a dead CCD
    assert is_dead(hot)


def test_fill_nans():
    data = np.array([[1.0, np.nan], [3.0, 5.0]], np.float32)
    assert fill_nans(data) is data
    np.testing.assert_array_equal(data, [[1.0, 3.0], [3.0, 5.0]])
    assert not np.isnan(fill_nans(np.full((2, 2), np.nan, np.float32))).any()


@pytest.mark.parametrize("compress", [True, False])
def test_only_the_data_section_is_read(tmp_path, compress):
    """Raw-style CCDs: 32 prescan columns and 16 overscan rows at the bias level around the sky."""
    rng = np.random.default_rng(0)
    full = np.full((272, 160), 500.0, np.float32)
    full[:256, 32:] = 1000 + 10 * rng.standard_normal((256, 128), dtype=np.float32)
    hdus = [fits.PrimaryHDU()]
    for name, datasec in (("ccd00", "[33:160,1:256]"), ("ccd01", "[33:999,1:256]"), ("ccd02", "garbage")):
        header = fits.Header({"EXTNAME": name, "DATASEC": datasec})
        hdus.append(fits.CompImageHDU(full, header, compression_type="RICE_1") if compress
                    else fits.ImageHDU(full, header))
    path = tmp_path / "raw.fits.fz"
    fits.HDUList(hdus).writeto(path)
    _, (trimmed, outside, malformed) = describe_exposure(path)
    assert (trimmed.origin, trimmed.shape) == ((0, 32), (256, 128))
    assert (outside.origin, outside.shape) == (malformed.origin, malformed.shape) == ((0, 0), (272, 160))
    data = read_ccd(path, trimmed)
    assert data.shape == (256, 128) and data.min() > 900  # no bias-only pixel read
    np.testing.assert_array_equal(read_ccd(path, trimmed, slice(10, 30)), data[10:30])
