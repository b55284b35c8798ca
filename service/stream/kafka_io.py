"""Kafka clients and the exactly-once sink: one transaction per event holding its output and its offset.

Per event: begin_transaction -> send verdict or dead letter (future checked) -> send_offsets_to_transaction
(offset + 1, with the consumer's group metadata so a zombie from an older generation is fenced, KIP-447)
-> commit_transaction. Consumers of the output topics read with isolation_level=read_committed, so they see
each event's output exactly once, however often the daemon or the broker dies in between.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import FencedInstanceIdError, InvalidProducerEpochError, KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from skyqa.service.config import KafkaConfig
from skyqa.service.stream.metrics import CONSUMER_LAG, STAGE_SECONDS
from skyqa.service.stream.outcome import Message, Outcome
from skyqa.service.stream.steps import Step

# One exposure per poll, and up to 15 min to classify it (a slow pull of a 700 MiB file) before the group
# considers this member dead and hands its partitions to another replica.
MAX_POLL_INTERVAL_MS = 900_000
SESSION_TIMEOUT_MS = 20_000  # a replica gone for good hands its partitions over after this
SEND_TIMEOUT_S = 15.0  # ms on a healthy broker; past this the transaction is aborted and retried
MAX_BLOCK_MS = 30_000  # init_transactions / metadata waits: bounded, so a dead broker means "retry later"
log = structlog.get_logger("skyqa.stream")


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection settings shared by every client (kafka-python option names)."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers.split(","),
        "security_protocol": cfg.security_protocol,
        # kafka-python backs off up to 30 s between reconnects by default; after a broker restart that is 30 s
        # of idling per client. The Java client's 1 s keeps recovery within seconds of the broker's return.
        "reconnect_backoff_max_ms": 1000,
    }
    if cfg.sasl_mechanism:
        options.update(sasl_mechanism=cfg.sasl_mechanism, sasl_plain_username=cfg.sasl_username,
                       sasl_plain_password=cfg.sasl_password)
    if cfg.ssl_cafile:
        options["ssl_cafile"] = str(cfg.ssl_cafile)
    return options


def transactional_id(cfg: KafkaConfig) -> str:
    """Stable per replica (StatefulSet pod names are): a restarted replica fences its own zombie."""
    return cfg.transactional_id or f"{cfg.group_id}-{socket.gethostname()}"


def make_consumer(cfg: KafkaConfig) -> KafkaConsumer:
    """Static membership (group_instance_id = the transactional id): a replica restarted after a crash takes
    its partitions back at once instead of waiting for its dead incarnation's session to expire."""
    return KafkaConsumer(
        cfg.events_topic,
        group_id=cfg.group_id,
        group_instance_id=transactional_id(cfg),
        session_timeout_ms=SESSION_TIMEOUT_MS,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=1,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        **client_options(cfg),
    )


class IdentityInDoubt(Exception):
    """The producer needs a new epoch, and this process cannot tell whether another one holds its identity: it
    exits for the orchestrator to restart it, as a fenced one does."""


def abort_on_stale_epoch(producer: KafkaProducer) -> None:
    """A produce answered INVALID_PRODUCER_EPOCH makes the transaction abortable, as in the Java client (KIP-588):
    the abort's answer then tells a fenced zombie (PRODUCER_FENCED) from a transaction the coordinator timed out.

    kafka-python 3.0 instead bumps the epoch itself (KIP-360). From a zombie, that InitProducerId reaches the
    coordinator while the successor's transaction is open, so the coordinator aborts the successor's transaction
    before it refuses the zombie, and the successor's next produce fails. kafka-python has no option for this, so
    it is set on the client's transaction manager; a client without that attribute fails here, at start.
    """
    manager = producer._transaction_manager  # noqa: SLF001 - see the docstring
    manager._NEEDS_EPOCH_BUMP_ERRORS = manager._NEEDS_EPOCH_BUMP_ERRORS - {InvalidProducerEpochError}  # noqa: SLF001


class TransactionalPublisher:
    """The transactional producer and the state of the one transaction it may have open."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.transactional_id = transactional_id(cfg)
        self._producer: KafkaProducer | None = None
        self._open = False

    def start(self) -> None:
        """init_transactions() aborts whatever a previous incarnation left open and fences it."""
        producer = KafkaProducer(transactional_id=self.transactional_id, max_block_ms=MAX_BLOCK_MS,
                                 **client_options(self.cfg))
        try:
            abort_on_stale_epoch(producer)
            producer.init_transactions()
        except BaseException:
            producer.close(timeout=5)
            raise
        self._producer = producer

    def begin(self) -> None:
        if self._producer is None:  # first event, or the broker was away when the producer started
            self.start()
        assert self._producer is not None
        try:
            self._producer.begin_transaction()
        except KafkaError as err:  # an error state only a new epoch clears: as after a failed abort
            self.close()
            raise IdentityInDoubt(f"cannot begin a transaction: {err!r}") from err
        self._open = True

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        # kafka-python 3.x: a send is only known to have succeeded once its future resolves.
        self._current().send(topic, key=key, value=value).get(timeout=SEND_TIMEOUT_S)

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], consumer: KafkaConsumer) -> None:
        producer = self._current()
        producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
        self._open = False

    def abort(self) -> None:
        """Abort the open transaction. Fencing is re-raised, and so is a failed abort, as IdentityInDoubt: only a
        new epoch clears the producer's state, and if another process now holds our transactional id (a broker
        answers such races with errors the client cannot interpret), a new epoch taken here would fence it."""
        if not self._open:
            return
        self._open = False
        try:
            self._current().abort_transaction()
        except (ProducerFencedError, FencedInstanceIdError):
            raise
        except KafkaError as err:
            self.close()
            raise IdentityInDoubt(f"abort failed: {err!r}") from err

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
        self._open = False

    def _current(self) -> KafkaProducer:
        if self._producer is None:
            raise RuntimeError("no transaction open")
        return self._producer


class Produce:
    """Outcome -> begins the event's transaction and sends the verdict or dead letter to its topic."""

    def __init__(self, publisher: TransactionalPublisher, next_step: Step[Outcome]) -> None:
        self.publisher, self.next_step = publisher, next_step

    def submit(self, message: Message[Outcome]) -> None:
        outcome = message.payload
        cfg = self.publisher.cfg
        topic = cfg.verdicts_topic if outcome.verdict is not None else cfg.deadletter_topic
        start = time.perf_counter()
        self.publisher.begin()
        self.publisher.send(topic, outcome.key, outcome.value)
        STAGE_SECONDS.labels(stage="publish").observe(time.perf_counter() - start)
        self.next_step.submit(message)


class CommitOffsets:
    """Adds the consumed offset to the transaction and commits it: output and progress land together."""

    def __init__(self, publisher: TransactionalPublisher, consumer: KafkaConsumer, next_step: Step[Outcome]) -> None:
        self.publisher, self.consumer, self.next_step = publisher, consumer, next_step

    def submit(self, message: Message[Outcome]) -> None:
        origin = message.origin
        start = time.perf_counter()
        tp = TopicPartition(origin.topic, origin.partition)
        self.publisher.commit({tp: OffsetAndMetadata(origin.offset + 1, "", -1)}, self.consumer)
        STAGE_SECONDS.labels(stage="commit").observe(time.perf_counter() - start)
        self.next_step.submit(message)


class LagMonitor:
    """Refreshes skyqa_consumer_lag_messages (end offset - position) for the assigned partitions."""

    def __init__(self, consumer: KafkaConsumer, every_s: float = 15.0) -> None:
        self.consumer, self.every_s = consumer, every_s
        self._due = 0.0
        self._labelled: set[TopicPartition] = set()

    def maybe_refresh(self) -> None:
        if time.monotonic() < self._due:
            return
        assigned = set(self.consumer.assignment())
        for tp in self._labelled - assigned:  # revoked in a rebalance: its lag is another replica's now
            CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        self._labelled &= assigned
        if not assigned:  # not joined yet: look again at the next poll
            return
        self._due = time.monotonic() + self.every_s
        try:
            ends = self.consumer.end_offsets(list(assigned), timeout_ms=5000)
            for tp in assigned:
                lag = max(ends[tp] - self.consumer.position(tp, timeout_ms=5000), 0)
                CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
                self._labelled.add(tp)
        except KafkaError as err:  # broker away: keep the last values, try again next period
            log.warning("lag_refresh_failed", error=repr(err))
