"""Two processes with one replica identity, step by step against a real broker: the older one (the zombie) learns
it is fenced, and nothing it does afterwards breaks the transaction of the one that fenced it.

The daemon-level test (test_stream_reliability.py) only meets these steps when the successor's start happens
to fall inside the zombie's open transaction; here that order is forced.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer
from kafka.errors import InvalidProducerEpochError, KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from skyqa.service.config import KafkaConfig
from skyqa.service.stream.kafka_io import IdentityInDoubt, TransactionalPublisher, make_consumer
from skyqa.service.stream.kafka_loop import FENCED
from tests.kafka_fixture import KafkaBroker, kafka_broker  # noqa: F401  (fixture)



@pytest.mark.integration
def test_a_zombie_is_told_at_its_abort_and_its_successor_commits(kafka_broker: KafkaBroker) -> None:  # noqa: F811
    topics = kafka_broker.unique_topics("fence")
    cfg = KafkaConfig(bootstrap_servers=kafka_broker.bootstrap, transactional_id=f"{topics['group_id']}-0", **topics)
    event = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    event.send(cfg.events_topic, b"exposure").get(timeout=30)
    event.close()
    zombie, successor = TransactionalPublisher(cfg), TransactionalPublisher(cfg)
    try:
        zombie.begin()
        zombie.send(cfg.verdicts_topic, b"k", b"zombie, before")
        successor.begin()  # init_transactions: aborts the zombie's transaction and fences it
        successor.send(cfg.verdicts_topic, b"k", b"successor")

        # The zombie's next produce meets the new epoch. A client that bumped its epoch here (kafka-python's
        # default) would abort the successor's open transaction on the coordinator.
        with pytest.raises(InvalidProducerEpochError):
            zombie.send(cfg.verdicts_topic, b"k", b"zombie, after")
        with pytest.raises(ProducerFencedError):
            zombie.abort()

        consumer = make_consumer(cfg)
        try:
            deadline = time.monotonic() + 60
            while not (polled := consumer.poll(timeout_ms=500)) and time.monotonic() < deadline:
                pass
            (tp, records), = polled.items()
            successor.commit({TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(records[0].offset + 1, "", -1)},
                             consumer)
        finally:
            consumer.close()
    finally:
        zombie.close()
        successor.close()

    assert [r.value for r in kafka_broker.read_committed(cfg.verdicts_topic, at_least=1)] == [b"successor"]


class _StuckProducer:
    """A transactional producer in an error state only a new epoch clears (what the broker's uninterpretable
    answers leave behind)."""

    def __init__(self) -> None:
        self.closed = False

    def abort_transaction(self) -> None:
        raise KafkaError("Cannot execute transactional method because we are in an error state")

    begin_transaction = abort_transaction

    def close(self, timeout: float) -> None:
        self.closed = True


@pytest.mark.parametrize("step", ["abort", "begin"])
def test_a_producer_that_cannot_abort_or_begin_makes_the_replica_restart(step: str) -> None:
    publisher = TransactionalPublisher(KafkaConfig(transactional_id="replica-0"))
    publisher._producer = stuck = _StuckProducer()  # type: ignore[assignment]  # noqa: SLF001
    publisher._open = step == "abort"  # noqa: SLF001
    with pytest.raises(IdentityInDoubt):  # in FENCED: the loop exits 75, it does not take a new epoch itself
        publisher.abort() if step == "abort" else publisher.begin()
    assert stuck.closed and publisher._producer is None  # noqa: SLF001
    assert IdentityInDoubt in FENCED
