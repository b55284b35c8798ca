"""The event schema: strict, versioned, and every parse failure a typed EventError."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from skyqa.service.stream.events import EventError, ExposureEvent, decode_event

GOOD = {
    "schema_version": 1,
    "exposure_id": "2910001",
    "uri": "file:///data/night/2910001p.fits.fz",
    "instrument": "MegaCam",
    "obs_time": "2026-03-01T04:12:33.5+00:00",
    "checksum": "sha256:" + "ab" * 32,
}


def test_valid_event_round_trips() -> None:
    event = decode_event(json.dumps(GOOD).encode())
    assert event.exposure_id == "2910001"
    assert event.obs_time == datetime(2026, 3, 1, 4, 12, 33, 500000, tzinfo=UTC)
    assert decode_event(event.to_bytes()) == event


def test_checksum_is_optional() -> None:
    assert decode_event(json.dumps({**GOOD, "checksum": None}).encode()).checksum is None
    assert decode_event(json.dumps({k: v for k, v in GOOD.items() if k != "checksum"}).encode()).checksum is None


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe", b"[1, 2", None])
def test_malformed_json(raw: bytes | None) -> None:
    with pytest.raises(EventError) as info:
        decode_event(raw)
    assert info.value.reason == "malformed_json"
    assert info.value.stage == "decode"


@pytest.mark.parametrize(
    "change",
    [
        {"schema_version": 2},
        {"schema_version": "1"},
        {"exposure_id": ""},
        {"uri": 42},
        {"obs_time": "yesterday"},
        {"obs_time": "2026-03-01T04:12:33"},  # naive: ambiguous latency
        {"checksum": "md5:abc"},
        {"checksum": "sha256:XYZ"},
        {"unexpected": True},
    ],
)
def test_schema_violations(change: dict) -> None:
    with pytest.raises(EventError) as info:
        decode_event(json.dumps({**GOOD, **change}).encode())
    assert info.value.reason == "schema_violation"


@pytest.mark.parametrize("missing", ["schema_version", "exposure_id", "uri", "instrument", "obs_time"])
def test_required_fields(missing: str) -> None:
    with pytest.raises(EventError) as info:
        decode_event(json.dumps({k: v for k, v in GOOD.items() if k != missing}).encode())
    assert info.value.reason == "schema_violation"
    assert missing in info.value.detail


def test_json_but_not_an_object() -> None:
    with pytest.raises(EventError) as info:
        decode_event(b"[1, 2, 3]")
    assert info.value.reason == "schema_violation"


def test_model_rejects_unknown_version_in_code() -> None:
    with pytest.raises(ValueError):
        ExposureEvent(schema_version=2, exposure_id="x", uri="file:///x", instrument="i", obs_time=datetime.now(UTC))  # type: ignore[arg-type]
