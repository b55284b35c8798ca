"""Exposure metadata for the archive, read from the primary header (the keywords MegaCam and the simulator write).

Headers are hostile input: a keyword that is absent, of the wrong type or unparsable becomes None; nothing here
raises, so metadata can never cost an exposure its verdict.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time

from skyqa.service.verdict import ExposureMetadata

# An observing night is named after the local date of its evening: anything before local noon belongs to the
# night that began the previous evening.
NIGHT_STARTS_AT_LOCAL_HOUR = 12


def read_metadata(header: fits.Header, utc_offset_hours: float) -> ExposureMetadata:
    """Metadata from a primary header; `utc_offset_hours` is the site's (CFHT: -10) for the observing night."""
    date_obs = _datetime(header.get("DATE-OBS"))
    mjd = _float(header.get("MJD-OBS"))
    if date_obs is None and mjd is not None:
        date_obs = _from_mjd(mjd)
    return ExposureMetadata(
        instrument=instrument(header),
        filter=_text(header.get("FILTER")),
        exptime_s=_float(header.get("EXPTIME")),
        airmass=_float(header.get("AIRMASS")),
        ra_deg=_angle(header, "RA_DEG", "RA", "hourangle"),
        dec_deg=_angle(header, "DEC_DEG", "DEC", "deg"),
        date_obs=date_obs,
        mjd_obs=mjd,
        object=_text(header.get("OBJECT")),
        night=observing_night(date_obs, utc_offset_hours) if date_obs else None,
    )


def instrument(header: fits.Header) -> str | None:
    """INSTRUME: what a model version may hold limits of its own for (skyqa.service.calibration)."""
    return _text(header.get("INSTRUME"))


def observing_night(when: datetime, utc_offset_hours: float) -> date:
    local = when.astimezone(UTC) + timedelta(hours=utc_offset_hours)
    return (local - timedelta(hours=NIGHT_STARTS_AT_LOCAL_HOUR)).date()


def _text(value: object) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text[:256] or None
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _angle(header: fits.Header, degrees_key: str, sexagesimal_key: str, unit: str) -> float | None:
    """Decimal degrees from `degrees_key`, else the sexagesimal `sexagesimal_key` (RA in hours, Dec in degrees)."""
    value = _float(header.get(degrees_key))
    if value is None:
        raw = header.get(sexagesimal_key)
        if isinstance(raw, str):
            try:
                value = float(Angle(raw.strip(), unit=unit).degree)
            except Exception:  # astropy raises assorted types on garbage
                return None
        else:
            value = _float(raw)
    if value is None or not (-360.0 <= value <= 360.0):
        return None
    return value


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_mjd(mjd: float) -> datetime | None:
    try:
        return Time(mjd, format="mjd", scale="utc").to_datetime(timezone=UTC)
    except Exception:  # out-of-range MJD
        return None
