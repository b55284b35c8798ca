"""What one event becomes: a verdict or a dead letter, serialised once for whichever sink publishes it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from skyqa.service.stream.errors import Rejected
from skyqa.service.stream.events import ExposureEvent
from skyqa.service.verdict import Verdict

DEAD_LETTER_SCHEMA_VERSION = 1

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Origin:
    """Where a message came from: what the commit step acknowledges and the dead letter points back to."""

    topic: str
    partition: int
    offset: int
    raw: bytes
    received_at: float  # unix time the daemon received it


@dataclass(frozen=True)
class Message(Generic[T]):
    """A payload travelling down the step chain with its origin (arroyo's Message, minus the batching)."""

    payload: T
    origin: Origin

    def replace(self, payload: U) -> Message[U]:
        return replace(self, payload=payload)  # type: ignore[return-value]


class SourcePosition(BaseModel):
    topic: str
    partition: int
    offset: int


class DeadLetterRecord(BaseModel):
    """The dead-letter topic's value: enough to triage (reason) and to replay (the exact original bytes)."""

    schema_version: int = DEAD_LETTER_SCHEMA_VERSION
    reason: str = Field(description="machine-readable: malformed_json, schema_violation, invalid_exposure_id, "
                                    "disallowed_uri, missing_file, too_large, checksum_mismatch, fetch_failed, "
                                    "an ExposureError reason, or processing_error (an unexpected exception, "
                                    "after serve.max_processing_attempts)")
    stage: str = Field(description="decode | fetch | classify")
    detail: str
    exposure_id: str | None = Field(None, description="when the event could be decoded")
    source: SourcePosition
    event_b64: str = Field(description="the original event bytes, base64")
    event_text: str = Field(description="the original event bytes as UTF-8 (invalid bytes replaced), for humans")
    failed_at: datetime


@dataclass(frozen=True)
class Outcome:
    """The single output of one event. Exactly one of `verdict` / `rejection` is set."""

    key: bytes | None
    value: bytes
    event: ExposureEvent | None
    verdict: Verdict | None = None
    rejection: Rejected | None = None

    @classmethod
    def of_verdict(cls, event: ExposureEvent, verdict: Verdict) -> Outcome:
        return cls(key=verdict.exposure_id.encode(), value=verdict.model_dump_json().encode(), event=event, verdict=verdict)

    @classmethod
    def of_rejection(cls, rejection: Rejected, origin: Origin, event: ExposureEvent | None) -> Outcome:
        record = DeadLetterRecord(
            reason=rejection.reason,
            stage=rejection.stage,
            detail=rejection.detail,
            exposure_id=event.exposure_id if event else None,
            source=SourcePosition(topic=origin.topic, partition=origin.partition, offset=origin.offset),
            event_b64=base64.b64encode(origin.raw).decode(),
            event_text=origin.raw.decode("utf-8", errors="replace"),
            failed_at=datetime.now(UTC),
        )
        key = event.exposure_id.encode() if event else None
        return cls(key=key, value=record.model_dump_json().encode(), event=event, rejection=rejection)
