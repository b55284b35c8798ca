"""The Kafka source loop: poll one event, run the chain (which ends in the transaction commit), recover.

The event after it is polled too, without waiting, and announced (`upcoming`) before the chain runs, so its
file can be read while this one is classified; it is handled next, or put back (a seek) when this one is retried.

Any failure before the commit leaves the event uncommitted: the open transaction is aborted and the consumer
seeks back to the event, which is processed again after a backoff. Nothing is lost and, because the output
and the offset commit atomically, nothing is published twice. A fenced producer (another replica took over our
transactional id) cannot recover: the loop stops and the process exits so the orchestrator restarts it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog
from kafka import KafkaConsumer
from kafka.errors import FencedInstanceIdError, KafkaError, ProducerFencedError
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition

from skyqa.service.stream.backoff import Backoff
from skyqa.service.stream.errors import Transient
from skyqa.service.stream.kafka_io import IdentityInDoubt, LagMonitor, TransactionalPublisher
from skyqa.service.stream.metrics import ERRORS, EVENTS_CONSUMED
from skyqa.service.stream.outcome import Message, Origin
from skyqa.service.stream.steps import Step

EXIT_FENCED = 75  # EX_TEMPFAIL: restart me
# Another process now holds this replica's identity (transactional id / group instance id): we are the zombie,
# or may be (IdentityInDoubt). A stale epoch on a produce is not among them: it is retried, and the abort before
# the retry answers PRODUCER_FENCED when another process holds the id (kafka_io.abort_on_stale_epoch).
FENCED = (ProducerFencedError, FencedInstanceIdError, IdentityInDoubt)
log = structlog.get_logger("skyqa.stream")


class KafkaLoop:
    def __init__(self, consumer: KafkaConsumer, publisher: TransactionalPublisher, chain: Step[bytes],
                 stop: threading.Event, heartbeat=lambda: None, poll_timeout_s: float = 1.0,  # noqa: ANN001
                 upcoming: Callable[[bytes], None] = lambda raw: None) -> None:
        self.consumer, self.publisher, self.chain, self.stop = consumer, publisher, chain, stop
        self.heartbeat, self.upcoming = heartbeat, upcoming
        self.poll_timeout_ms = int(poll_timeout_s * 1000)
        self.lag = LagMonitor(consumer)
        self.backoff = Backoff()
        self._retrying: tuple[TopicPartition, int] | None = None
        self._received_at = 0.0
        self._ahead: tuple[TopicPartition, ConsumerRecord] | None = None  # polled after the current one, not handled

    def run(self) -> int:
        """Until `stop` is set (returns 0) or the producer is fenced (returns EXIT_FENCED)."""
        while not self.stop.is_set():
            self.heartbeat()
            try:
                polled = self._next()
                self.lag.maybe_refresh()
                if polled is not None:
                    self._handle(*polled)
            except FENCED as err:
                log.error("fenced_exiting", error=repr(err), transactional_id=self.publisher.transactional_id)
                return EXIT_FENCED
        return 0

    def _next(self) -> tuple[TopicPartition, ConsumerRecord] | None:
        """The event polled ahead, else one from the broker; and the one after it, polled without waiting and
        announced. A poll can complete a rebalance, which moves partitions and resets positions to the commits:
        an event whose partition moved away is left to its new owner (who starts from the commit), and the
        uncommitted current event polled again is not taken as the next one."""
        current, self._ahead = self._ahead, None
        if current is None or current[0] not in self.consumer.assignment():
            current = self._poll(self.poll_timeout_ms)
        if current is None:
            return None
        ahead = self._poll(0)
        if current[0] not in self.consumer.assignment():
            self._ahead = ahead
            return None
        if ahead is not None and (ahead[0] != current[0] or ahead[1].offset > current[1].offset):
            self._ahead = ahead
            self.upcoming(ahead[1].value or b"")
        return current

    def _poll(self, timeout_ms: int) -> tuple[TopicPartition, ConsumerRecord] | None:
        batch = self.consumer.poll(timeout_ms=timeout_ms, max_records=1)
        return next(((tp, records[0]) for tp, records in batch.items() if records), None)

    def _put_back_ahead(self) -> None:
        """The event polled ahead is polled again after the one retried (the consumer's position is past it)."""
        if self._ahead is not None:
            tp, record = self._ahead
            self._ahead = None
            if tp in self.consumer.assignment():
                self.consumer.seek(tp, record.offset)

    def _handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        if self._retrying != (tp, record.offset):  # a first attempt, not a retry of the same event
            EVENTS_CONSUMED.inc()
            self._received_at = time.time()
        origin = Origin(tp.topic, tp.partition, record.offset, record.value or b"", self._received_at)
        try:
            self.chain.submit(Message(origin.raw, origin))
        except Transient as err:
            ERRORS.labels(stage=err.stage, reason="transient").inc()
            self._retry_later(tp, record.offset, f"{err}")
        except FENCED:
            raise
        except KafkaError as err:
            ERRORS.labels(stage="publish", reason=type(err).__name__).inc()
            self._retry_later(tp, record.offset, repr(err))
        else:
            self._retrying = None
            self.backoff.reset()

    def _retry_later(self, tp: TopicPartition, offset: int, error: str) -> None:
        log.warning("event_retry", topic=tp.topic, partition=tp.partition, offset=offset, error=error,
                    attempt=self.backoff.failures + 1)
        self.publisher.abort()
        self._retrying = (tp, offset)
        self._put_back_ahead()  # before the seek below: on the same partition, that one wins
        if tp in self.consumer.assignment():  # else a rebalance moved it away: its new owner starts from the commit
            self.consumer.seek(tp, offset)
        self.backoff.wait(self.stop)
