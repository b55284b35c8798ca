"""The processing steps, arroyo-style: each does one job and `submit`s its result to the next step.

    DeadLetter(Decode -> Fetch -> Classify -> Render) -> <sink: Produce -> CommitOffsets | WriteFiles>

A step raises `Rejected` for a bad event (caught by `DeadLetter`, which sends a dead letter down the same sink
instead) and `Transient` when a dependency is down (caught by the source loop, which retries the event
later and commits nothing). Sinks are in kafka_io.py and dir_source.py.

The failure taxonomy, in one place (`Classify`): a dependency being down (inference backend unreachable or
timing out; broker errors are the source loop's) is retried with backoff, forever, never dead-lettered.
Anything else raised while processing the file is the file's fault: a known case is an ExposureError with its
own reason; an unexpected exception is retried (it might be a passing state, e.g. a worker OOM-killed by a
neighbour) at most `max_attempts` times in all for the same event, then dead-lettered as `processing_error`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import structlog
from tritonclient.utils import InferenceServerException

from skyqa.service.inference.triton import TritonUnavailableError
from skyqa.service.pipeline.exposure import ExposureError
from skyqa.service.stream.errors import Rejected, Transient
from skyqa.service.stream.events import EventError, ExposureEvent, decode_event
from skyqa.service.stream.fetch import Fetcher
from skyqa.service.stream.metrics import ERRORS, PROCESSING_ERRORS, STAGE_SECONDS
from skyqa.service.stream.outcome import Message, Outcome
from skyqa.service.verdict import Verdict

T_contra = TypeVar("T_contra", contravariant=True)
# The inference backend is down or slow: not the file's fault, retried without limit.
DEPENDENCY_DOWN = (TritonUnavailableError, InferenceServerException, ConnectionError, TimeoutError)
log = structlog.get_logger("skyqa.stream")


class Step(Protocol[T_contra]):
    def submit(self, message: Message[T_contra]) -> None: ...


class VerdictSource(Protocol):
    """What Classify needs: skyqa.service.pipeline.classify.Classifier (or a stand-in in unit tests)."""

    def classify(self, path: Path, exposure_id: str | None = None) -> Verdict: ...

    def finish_preview(self) -> object:
        """Wait for what still reads the last file classified after its verdict."""


class ClassifyError(Rejected):
    """An unusable exposure file; `reason` is the ExposureError reason (not_fits, truncated, ...)."""

    stage = "classify"


@dataclass(frozen=True)
class Fetched:
    event: ExposureEvent
    path: Path


@dataclass(frozen=True)
class Classified:
    event: ExposureEvent
    verdict: Verdict


class Decode:
    """bytes -> ExposureEvent; binds exposure_id to every log line of the steps after it."""

    def __init__(self, next_step: Step[ExposureEvent]) -> None:
        self.next_step = next_step

    def submit(self, message: Message[bytes]) -> None:
        event = decode_event(message.payload)
        with structlog.contextvars.bound_contextvars(exposure_id=event.exposure_id):
            self.next_step.submit(message.replace(event))


class Fetch:
    """ExposureEvent -> a local path, valid (and its spooled download kept) while the next steps run, and until
    `release` returns: what still reads the file after the verdict (the classifier's preview) is done with it."""

    def __init__(self, fetcher: Fetcher, next_step: Step[Fetched],
                 release: Callable[[], object] = lambda: None) -> None:
        self.fetcher, self.next_step, self.release = fetcher, next_step, release

    def submit(self, message: Message[ExposureEvent]) -> None:
        event = message.payload
        start = time.perf_counter()
        with self.fetcher.fetch(event.uri, event.checksum) as path:
            STAGE_SECONDS.labels(stage="fetch").observe(time.perf_counter() - start)
            try:
                self.next_step.submit(message.replace(Fetched(event, path)))
            finally:
                if self.fetcher.spooled(path):  # deleted on leaving the block; a file in place stays for later
                    self.release()


class Classify:
    """Fetched file -> Verdict, sorting failures (module docstring): ExposureError -> reject with its reason;
    dependency down -> retry; anything else -> retry, then reject as processing_error after `max_attempts`."""

    def __init__(self, classifier: VerdictSource, next_step: Step[Classified], max_attempts: int = 3) -> None:
        self.classifier, self.next_step, self.max_attempts = classifier, next_step, max_attempts
        self._failures: tuple[tuple[str, int, int], int] | None = None  # (event position, unexpected failures)

    def submit(self, message: Message[Fetched]) -> None:
        fetched = message.payload
        start = time.perf_counter()
        try:
            verdict = self.classifier.classify(fetched.path, fetched.event.exposure_id)
        except ExposureError as err:
            raise ClassifyError(err.reason, err.message) from None
        except DEPENDENCY_DOWN as err:
            raise Transient("classify", f"{type(err).__name__}: {err}") from err
        except Exception as err:  # the file's content hit something unforeseen: bounded retries
            raise self._unexpected(message, err) from err
        self._failures = None
        STAGE_SECONDS.labels(stage="classify").observe(time.perf_counter() - start)
        for stage, seconds in verdict.timings_s.items():
            if stage != "total":
                STAGE_SECONDS.labels(stage=stage).observe(seconds)
        self.next_step.submit(message.replace(Classified(fetched.event, verdict)))

    def _unexpected(self, message: Message[Fetched], err: Exception) -> Exception:
        """Transient for the first max_attempts - 1 failures of the same event, then a processing_error rejection."""
        position = (message.origin.topic, message.origin.partition, message.origin.offset)
        failures = self._failures[1] + 1 if self._failures and self._failures[0] == position else 1
        self._failures = (position, failures)
        detail = f"{type(err).__name__}: {err}"
        log.warning("processing_error", error=detail, attempt=failures, max_attempts=self.max_attempts,
                    exc_info=err)
        if failures < self.max_attempts:
            PROCESSING_ERRORS.labels(outcome="retried").inc()
            return Transient("classify", f"processing_error (attempt {failures}/{self.max_attempts}) {detail}")
        PROCESSING_ERRORS.labels(outcome="dead_lettered").inc()
        self._failures = None
        return ClassifyError("processing_error", f"{detail} (failed {failures} times)")


class Render:
    """Classified -> the verdict Outcome for the sink."""

    def __init__(self, next_step: Step[Outcome]) -> None:
        self.next_step = next_step

    def submit(self, message: Message[Classified]) -> None:
        classified = message.payload
        self.next_step.submit(message.replace(Outcome.of_verdict(classified.event, classified.verdict)))


class DeadLetter:
    """Runs `inner`; if it rejects the event, sends a dead-letter Outcome to `sink` instead (same transaction)."""

    def __init__(self, inner: Step[bytes], sink: Step[Outcome]) -> None:
        self.inner, self.sink = inner, sink

    def submit(self, message: Message[bytes]) -> None:
        try:
            self.inner.submit(message)
        except Rejected as rejection:
            ERRORS.labels(stage=rejection.stage, reason=rejection.reason).inc()
            event = _decoded_or_none(message.payload)
            with structlog.contextvars.bound_contextvars(exposure_id=event.exposure_id if event else None):
                log.warning("rejected", stage=rejection.stage, reason=rejection.reason, detail=rejection.detail,
                            topic=message.origin.topic, partition=message.origin.partition,
                            offset=message.origin.offset)
                self.sink.submit(message.replace(Outcome.of_rejection(rejection, message.origin, event)))


def _decoded_or_none(raw: bytes) -> ExposureEvent | None:
    try:
        return decode_event(raw)
    except EventError:
        return None


def chain(fetcher: Fetcher, classifier: VerdictSource, sink: Step[Outcome], max_attempts: int = 3) -> Step[bytes]:
    """The whole pipeline for one raw event, ending in `sink` (which publishes and commits); an unexpected
    exception while classifying one event is retried at most `max_attempts` times in all."""
    return DeadLetter(Decode(Fetch(fetcher, Classify(classifier, Render(sink), max_attempts),
                                   release=classifier.finish_preview)), sink)
