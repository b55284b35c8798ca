"""The last step: once an output is durable (committed), account for it in metrics and logs."""

from __future__ import annotations

import time

import structlog

from skyqa.service.stream.metrics import (
    CUTOUTS,
    DEAD_LETTERS,
    DETECTIONS,
    END_TO_END_SECONDS,
    LAST_BACKGROUND,
    LAST_BACKGROUND_RMS,
    LAST_BACKGROUND_STRUCTURE,
    LAST_DISTANCE,
    LAST_ELONGATION,
    LAST_FWHM,
    LAST_VERDICT_TIME,
    VERDICT_CELLS,
    VERDICTS,
)
from skyqa.service.stream.outcome import Message, Outcome
from skyqa.service.verdict import Verdict

log = structlog.get_logger("skyqa.stream")


class Observe:
    """Outcome (committed) -> counters, last-exposure gauges, end-to-end latency and one log line."""

    def submit(self, message: Message[Outcome]) -> None:
        outcome = message.payload
        now = time.time()
        if outcome.rejection is not None:
            DEAD_LETTERS.labels(reason=outcome.rejection.reason).inc()
            log.info("dead_letter_committed", reason=outcome.rejection.reason)
            return
        assert outcome.verdict is not None and outcome.event is not None
        _record_verdict(outcome.verdict, now)
        since_receipt = now - message.origin.received_at
        since_event = now - outcome.event.obs_time.timestamp()
        END_TO_END_SECONDS.labels(since="receipt").observe(since_receipt)
        END_TO_END_SECONDS.labels(since="event").observe(max(since_event, 0.0))
        log.info("verdict_committed", label=outcome.verdict.label.value, cell=outcome.verdict.cell,
                 latency_receipt_s=round(since_receipt, 3), latency_event_s=round(since_event, 3))


def _record_verdict(verdict: Verdict, now: float) -> None:
    VERDICTS.labels(label=verdict.label.value).inc()
    if verdict.cell is not None:
        VERDICT_CELLS.labels(cell_x=str(verdict.cell[0]), cell_y=str(verdict.cell[1])).inc()
    DETECTIONS.observe(verdict.detections)
    CUTOUTS.observe(verdict.cutouts)
    m = verdict.metrics
    for gauge, value in ((LAST_FWHM, m.fwhm_arcsec), (LAST_ELONGATION, m.elongation), (LAST_BACKGROUND, m.background_adu),
                         (LAST_BACKGROUND_RMS, m.background_rms_adu), (LAST_BACKGROUND_STRUCTURE, m.background_structure),
                         (LAST_DISTANCE, verdict.distance)):
        gauge.set(float("nan") if value is None else value)
    LAST_VERDICT_TIME.set(now)
