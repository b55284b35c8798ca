"""The Kafka loop against a real broker: the event after the current one is polled ahead and announced before the
current one runs, put back when the current one is retried, and no event is skipped or handled twice."""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaProducer

from skyqa.service.config import KafkaConfig
from skyqa.service.stream.errors import Transient
from skyqa.service.stream.kafka_io import TransactionalPublisher, make_consumer
from skyqa.service.stream.kafka_loop import KafkaLoop
from skyqa.service.stream.outcome import Message
from tests.kafka_fixture import KafkaBroker, kafka_broker  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


class Recorder:
    """The chain: records each attempt, fails the first attempt of `flaky` like a dependency outage, and stops the
    loop once every event has gone through."""

    def __init__(self, flaky: bytes, n: int, stop: threading.Event, announced: list[bytes]) -> None:
        self.flaky, self.n, self.stop, self.announced = flaky, n, stop, announced
        self.attempts: list[tuple[bytes, list[bytes]]] = []  # (event, what had been announced when it ran)
        self.done: list[bytes] = []

    def submit(self, message: Message[bytes]) -> None:
        self.attempts.append((message.payload, list(self.announced)))
        if message.payload == self.flaky and sum(e == self.flaky for e, _ in self.attempts) == 1:
            raise Transient("classify", "backend down")
        self.done.append(message.payload)
        if len(self.done) == self.n:
            self.stop.set()


def test_the_next_event_is_announced_ahead_and_put_back_on_a_retry(kafka_broker: KafkaBroker) -> None:  # noqa: F811
    topics = kafka_broker.unique_topics("loop")
    cfg = KafkaConfig(bootstrap_servers=kafka_broker.bootstrap, transactional_id=f"{topics['group_id']}-0", **topics)
    events = [f"e{i}".encode() for i in range(4)]
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for event in events:
        producer.send(cfg.events_topic, event).get(timeout=30)
    producer.close()

    stop, announced = threading.Event(), []
    chain = Recorder(flaky=b"e1", n=len(events), stop=stop, announced=announced)
    consumer = make_consumer(cfg)
    try:
        loop = KafkaLoop(consumer, TransactionalPublisher(cfg), chain, stop, poll_timeout_s=0.2,
                         upcoming=announced.append)
        runner = threading.Thread(target=loop.run, daemon=True)
        runner.start()
        runner.join(120)
    finally:
        consumer.close(autocommit=False)
    assert not runner.is_alive()

    assert chain.done == events  # in order, each once: e2, polled ahead while e1 failed, was put back
    assert [event for event, _ in chain.attempts] == [b"e0", b"e1", b"e1", b"e2", b"e3"]
    # Each event ran after the one behind it was announced (the last has none behind it).
    assert [seen[-1] if seen else None for _, seen in chain.attempts] == [b"e1", b"e2", b"e2", b"e3", b"e3"]
