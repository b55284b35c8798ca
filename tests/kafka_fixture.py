"""Session-scoped real Kafka broker (scripts/kafka.sh: single-node KRaft on 127.0.0.1), always stopped at the end.

Import `kafka_broker` into a test module to use it. `KafkaBroker.restart()` stops and starts the same broker
(same port, same data dir) for the reliability tests.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "kafka.sh"


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class KafkaBroker:
    data_dir: Path
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "start", str(self.data_dir), str(self.port)], check=True)

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.data_dir)], check=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_topics(self, *names: str, partitions: int = 1) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        finally:
            admin.close()

    def unique_topics(self, prefix: str, partitions: int = 1) -> dict[str, str]:
        """Fresh events/verdicts/deadletter topic names (+ a group id) so tests sharing the broker never mix."""
        tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
        names = {"events_topic": f"{tag}.exposures", "verdicts_topic": f"{tag}.verdicts",
                 "deadletter_topic": f"{tag}.deadletter", "group_id": tag}
        self.create_topics(names["events_topic"], partitions=partitions)
        self.create_topics(names["verdicts_topic"], names["deadletter_topic"])
        return names

    def read_committed(self, topic: str, at_least: int = 0, idle_s: float = 3.0, timeout_s: float = 120.0) -> list:
        """Every committed record of `topic`, as a downstream read_committed consumer sees them.

        Waits for `at_least` records (a loaded machine can take longer than any fixed idle time to join
        and fetch), then for `idle_s` without more, so duplicates beyond the expected count are seen too.
        """
        consumer = KafkaConsumer(topic, bootstrap_servers=self.bootstrap, isolation_level="read_committed",
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        records: list = []
        last = time.monotonic()
        deadline = last + timeout_s
        try:
            while time.monotonic() < deadline:
                fetched = [r for batch in consumer.poll(timeout_ms=500).values() for r in batch]
                if fetched:
                    records.extend(fetched)
                    last = time.monotonic()
                elif len(records) >= at_least and time.monotonic() - last >= idle_s:
                    break
            return records
        finally:
            consumer.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    subprocess.run(["bash", str(SCRIPT), "fetch"], check=True)
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
