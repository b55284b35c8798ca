"""`skyqa archive consume`: the verdict and dead-letter topics into the archive, each record exactly once.

Reads both topics with read_committed in its own consumer group, writes each polled batch in one database
transaction (idempotent upserts) and only then commits the batch's offsets. A writer killed between the two
re-reads the batch on restart and the upsert lands it on the same rows; a database that is down is retried
(tenacity) with the batch held, so nothing is committed before it is stored.
"""

from __future__ import annotations

import threading
import time

import structlog
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from sqlalchemy.exc import SQLAlchemyError
from tenacity import RetryCallState, retry, retry_if_exception_type, stop_any, wait_exponential

from skyqa.service.archive.ingest import DocumentError, parse_document
from skyqa.service.archive.metrics import LAST_COMMIT, RECORDS_WRITTEN, WRITE_FAILURES
from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.stream.kafka_io import LagMonitor, client_options
from skyqa.service.verdict import Verdict

# A batch held while the database is away must not cost the group membership too soon (then it is re-read).
MAX_POLL_INTERVAL_MS = 600_000
log = structlog.get_logger("skyqa.archive")


def make_consumer(settings: Settings) -> KafkaConsumer:
    cfg = settings.kafka
    return KafkaConsumer(
        cfg.verdicts_topic, cfg.deadletter_topic,
        group_id=settings.archive.consumer_group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=settings.archive.batch_size,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        **client_options(cfg),
    )


class ArchiveWriter:
    def __init__(self, settings: Settings, archive: Archive, consumer: KafkaConsumer, stop: threading.Event,
                 heartbeat=lambda: None) -> None:  # noqa: ANN001
        self.settings, self.archive, self.consumer, self.stop, self.heartbeat = settings, archive, consumer, stop, heartbeat
        self.lag = LagMonitor(consumer)

    def run(self) -> int:
        while not self.stop.is_set():
            self.heartbeat()
            batch = self.consumer.poll(timeout_ms=int(self.settings.kafka.poll_timeout_s * 1000),
                                       max_records=self.settings.archive.batch_size)
            self.lag.maybe_refresh()
            if not batch:
                continue
            verdicts, dead_letters = self._split(batch)
            if not self._store(verdicts, dead_letters):
                return 0  # stopped while the database was away: nothing committed, the batch is re-read
            offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items()}
            try:
                self.consumer.commit(offsets)
            except KafkaError as err:  # rebalance or broker away: the batch comes back and upserts onto itself
                log.warning("offset_commit_failed", error=repr(err))
        return 0

    def _split(self, batch: dict[TopicPartition, list]) -> tuple[list[Verdict], list[bytes]]:
        verdicts: list[Verdict] = []
        dead_letters: list[bytes] = []
        for tp, records in batch.items():
            for record in records:
                raw = record.value or b""
                try:
                    parsed = parse_document(raw)
                except DocumentError as err:  # kept, not dropped: an unreadable record becomes a dead letter row
                    log.warning("undecodable_record", topic=tp.topic, partition=tp.partition, offset=record.offset,
                                error=str(err))
                    dead_letters.append(raw)
                    continue
                if parsed.verdict is not None and tp.topic == self.settings.kafka.verdicts_topic:
                    verdicts.append(parsed.verdict)
                else:
                    dead_letters.append(parsed.dead_letter or raw)
        return verdicts, dead_letters

    def _store(self, verdicts: list[Verdict], dead_letters: list[bytes]) -> bool:
        def failed(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            WRITE_FAILURES.labels(error=type(err).__name__).inc()
            log.warning("archive_write_retry", error=repr(err), attempt=state.attempt_number)
            self.heartbeat()

        @retry(retry=retry_if_exception_type(SQLAlchemyError), wait=wait_exponential(multiplier=0.2, max=10),
               stop=stop_any(lambda _state: self.stop.is_set()), after=failed, reraise=True)
        def write() -> None:
            self.archive.write(verdicts, dead_letters, source="kafka")

        try:
            write()
        except SQLAlchemyError:
            return False
        RECORDS_WRITTEN.labels(kind="verdict").inc(len(verdicts))
        RECORDS_WRITTEN.labels(kind="dead_letter").inc(len(dead_letters))
        LAST_COMMIT.set(time.time())
        log.info("archived", verdicts=len(verdicts), dead_letters=len(dead_letters))
        return True


def consume(settings: Settings, stop: threading.Event | None = None) -> int:
    from skyqa.service.stream.health import Health, HealthServer, tcp_reachable
    from skyqa.service.stream.serve import _stop_on_signals

    stop = stop or threading.Event()
    _stop_on_signals(stop)
    archive = Archive(settings.archive.url)
    consumer = make_consumer(settings)
    health = Health({"broker": tcp_reachable(settings.kafka.bootstrap_servers)},
                    stuck_after_s=MAX_POLL_INTERVAL_MS / 1000 + 60)
    server = HealthServer(health, settings.serve.http_host, settings.archive.http_port).start()
    log.info("archive_consuming", topics=[settings.kafka.verdicts_topic, settings.kafka.deadletter_topic],
             group=settings.archive.consumer_group, archive=archive.engine.url.render_as_string(hide_password=True),
             http=f"{settings.serve.http_host}:{server.port}")
    try:
        return ArchiveWriter(settings, archive, consumer, stop, heartbeat=health.beat).run()
    finally:
        consumer.close(autocommit=False)
        server.stop()
        archive.close()
