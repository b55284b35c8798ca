"""The daemon's archive step (directory source): the verdict or dead letter lands in the archive before the
output files and the ledger line, so a crash in between re-processes the file into the same row (upsert)."""

from __future__ import annotations

import time

from sqlalchemy.exc import SQLAlchemyError

from skyqa.service.archive.metrics import LAST_COMMIT, RECORDS_WRITTEN, WRITE_FAILURES
from skyqa.service.archive.store import Archive
from skyqa.service.stream.errors import Transient
from skyqa.service.stream.outcome import Message, Outcome
from skyqa.service.stream.steps import Step


class ArchiveOutcomes:
    """Outcome -> archive row; a database that is down is a Transient failure (the source retries the file)."""

    def __init__(self, archive: Archive, next_step: Step[Outcome]) -> None:
        self.archive, self.next_step = archive, next_step

    def submit(self, message: Message[Outcome]) -> None:
        outcome = message.payload
        try:
            if outcome.verdict is not None:
                self.archive.write(verdicts=[outcome.verdict], source="dir")
            else:
                self.archive.write(dead_letters=[outcome.value])
        except SQLAlchemyError as err:
            WRITE_FAILURES.labels(error=type(err).__name__).inc()
            raise Transient("archive", f"{type(err).__name__}: {err}") from err
        RECORDS_WRITTEN.labels(kind="verdict" if outcome.verdict is not None else "dead_letter").inc()
        LAST_COMMIT.set(time.time())
        self.next_step.submit(message)
