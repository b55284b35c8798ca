"""The new-exposure event: a versioned schema, parsed strictly so bad events are rejected with a typed reason."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skyqa.service.pipeline.ids import InvalidId, normalise_exposure_id
from skyqa.service.stream.errors import Rejected

CHECKSUM_PATTERN = r"^sha256:[0-9a-f]{64}$"


class ExposureEvent(BaseModel):
    """One exposure ready for quality assessment (published by the data acquisition system, or `skyqa replay`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    exposure_id: str = Field(min_length=1, max_length=256)
    uri: str = Field(min_length=1, description="file://, http(s):// or another fsspec URL of the FITS file")
    instrument: str = Field(min_length=1)
    obs_time: datetime = Field(description="end of readout, timezone-aware (ISO 8601)")
    checksum: str | None = Field(None, pattern=CHECKSUM_PATTERN, description="'sha256:<hex>' of the file")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class EventError(Rejected):
    """An event that cannot be parsed: `reason` is "malformed_json", "schema_violation" or "invalid_exposure_id"."""

    stage = "decode"


def decode_event(raw: bytes | None) -> ExposureEvent:
    """Strict parse of one event; raises EventError (never a pydantic or JSON error)."""
    try:
        data = json.loads(raw if raw is not None else b"")
    except (UnicodeDecodeError, ValueError) as err:
        raise EventError("malformed_json", str(err)) from None
    try:
        event = ExposureEvent.model_validate(data)
    except ValidationError as err:
        raise EventError("schema_violation", _summary(err)) from None
    if event.obs_time.tzinfo is None:
        raise EventError("schema_violation", "obs_time: timezone required")
    try:
        return event.model_copy(update={"exposure_id": normalise_exposure_id(event.exposure_id)})
    except InvalidId as err:
        raise EventError("invalid_exposure_id", str(err)) from None


def _summary(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors())
