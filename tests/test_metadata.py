"""Exposure metadata from primary headers: the simulator's keywords, and hostile values that must become None."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from astropy.io import fits

from skyqa.service.pipeline.metadata import observing_night, read_metadata
from skyqa.service.verdict import VERDICT_SCHEMA_VERSION, ExposureMetadata, Verdict


def header(**cards: object) -> fits.Header:
    h = fits.Header()
    for key, value in cards.items():
        h[key.replace("_", "-")] = value
    return h


def test_megacam_keywords() -> None:
    h = header(INSTRUME="MegaPrime", FILTER="r.MP9602", EXPTIME=60.0, AIRMASS=1.25, RA="10:00:28.60",
               DEC="+02:12:21.0", DATE_OBS="2026-11-23T08:30:00", MJD_OBS=61002.354167, OBJECT="D2")
    m = read_metadata(h, utc_offset_hours=-10.0)
    assert (m.instrument, m.filter, m.exptime_s, m.airmass, m.object) == ("MegaPrime", "r.MP9602", 60.0, 1.25, "D2")
    assert m.ra_deg == pytest.approx(150.11917, abs=1e-4) and m.dec_deg == pytest.approx(2.20583, abs=1e-4)
    assert m.date_obs == datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    assert m.night == date(2026, 11, 22)  # 22:30 local on the 22nd


@pytest.mark.parametrize("cards", [
    {},
    {"EXPTIME": "sixty", "AIRMASS": True, "RA": "garbage", "DEC": 1e30, "DATE_OBS": "yesterday", "MJD_OBS": "x"},
    {"EXPTIME": None, "RA_DEG": 720.0, "DATE_OBS": 12, "MJD_OBS": 1e12, "FILTER": ""},
])
def test_hostile_headers_give_none_never_raise(cards: dict) -> None:
    m = read_metadata(header(**cards), utc_offset_hours=-10.0)
    assert m.exptime_s is None and m.ra_deg is None and m.dec_deg is None and m.date_obs is None
    assert m.night is None and m.filter is None


def test_date_from_mjd_when_date_obs_is_missing() -> None:
    m = read_metadata(header(MJD_OBS=61367.5), utc_offset_hours=-10.0)
    assert m.date_obs == datetime(2026, 11, 23, 12, 0, tzinfo=UTC) and m.night == date(2026, 11, 22)


def test_observing_night_turns_at_local_noon() -> None:
    assert observing_night(datetime(2026, 11, 23, 21, 59, tzinfo=UTC), -10.0) == date(2026, 11, 22)
    assert observing_night(datetime(2026, 11, 23, 22, 0, tzinfo=UTC), -10.0) == date(2026, 11, 23)
    assert observing_night(datetime(2026, 11, 23, 2, 0, tzinfo=UTC), 1.0) == date(2026, 11, 22)


def test_v1_verdicts_still_load_and_v2_adds_metadata() -> None:
    from tests.verdict_factory import make_verdict
    import numpy as np

    v2 = make_verdict("e", np.ones(625, int))
    assert v2.schema_version == VERDICT_SCHEMA_VERSION == 2
    v1 = v2.model_dump(mode="json", exclude={"metadata"}) | {"schema_version": 1}
    assert Verdict.model_validate(v1).metadata == ExposureMetadata()
