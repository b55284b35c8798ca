"""`skyqa archive consume` against the real broker and the real PostgreSQL server: every verdict lands exactly once
although the writer is killed with SIGKILL mid-stream and PostgreSQL is crashed and restarted twice (once between
writers, once while the writer holds a batch)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from skyqa.service.archive.models import DeadLetterRow, Exposure, VerdictRow
from skyqa.service.archive.store import Archive
from tests.kafka_fixture import KafkaBroker, free_port, kafka_broker  # noqa: F401 - session fixture
from tests.postgres_fixture import PostgresServer, postgres_server  # noqa: F401 - session fixture
from tests.verdict_factory import make_verdict, random_histovectors

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
N_FIRST, N_SECOND, N_DEAD, N_ABORTED = 150, 150, 20, 10


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OperationalError, KafkaError, OSError):  # a server restarting: ask again
            pass
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; writer log tail:\n{log.read_text()[-4000:]}")


class Writer:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> Writer:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "skyqa", "archive", "consume"], cwd=ROOT,
                                         env={**self.env, "SKYQA_ARCHIVE__HTTP_PORT": str(self.port)},
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = rf"^{name}{{{selector}}} (\S+)$" if labels else rf"^{name}(?:{{[^}}]*}})? (\S+)$"
        return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def produce(broker: KafkaBroker, topic: str, values: list[bytes], abort: bool = False) -> None:
    """As the daemon publishes: in a transaction (committed, or aborted: invisible to read_committed)."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"test-{topic}-{abort}-{len(values)}")
    producer.init_transactions()
    producer.begin_transaction()
    for value in values:
        producer.send(topic, value).get(timeout=30)
    producer.abort_transaction() if abort else producer.commit_transaction()
    producer.close()


def uncommitted(broker: KafkaBroker, group: str, topics: list[str]) -> int:
    """Records (as a read_committed reader sees them) past the group's committed offsets: 0 when caught up.
    Transaction markers take offsets too, so the end offset of the log is not the target: the last record is."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        offsets = {(tp.topic, tp.partition): meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()}
    finally:
        admin.close()
    records = [r for topic in topics for r in broker.read_committed(topic, idle_s=0.5)]
    return sum(1 for r in records if r.offset >= offsets.get((r.topic, r.partition), 0))


def test_kill9_writer_and_restart_postgres_every_verdict_lands_once(
        kafka_broker: KafkaBroker, postgres_server: PostgresServer, tmp_path: Path) -> None:  # noqa: F811
    topics = kafka_broker.unique_topics("archive")
    url = postgres_server.database()
    group = f"{topics['group_id']}-archive"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_") or k == "SKYQA_DATA_DIR"}
    env.update({
        "SKYQA_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "SKYQA_KAFKA__VERDICTS_TOPIC": topics["verdicts_topic"],
        "SKYQA_KAFKA__DEADLETTER_TOPIC": topics["deadletter_topic"],
        "SKYQA_ARCHIVE__URL": url,
        "SKYQA_ARCHIVE__CONSUMER_GROUP": group,
        "SKYQA_ARCHIVE__BATCH_SIZE": "7",
        "SKYQA_SERVE__HTTP_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    })
    vectors, _ = random_histovectors(N_FIRST + N_SECOND + N_ABORTED, seed=9)
    verdicts = [make_verdict(f"k{i:04d}", v, minute=i).model_dump_json().encode() for i, v in enumerate(vectors)]
    dead = [json.dumps({"reason": "not_fits", "stage": "classify", "detail": f"bad {i}", "exposure_id": f"d{i}",
                        "failed_at": "2026-11-23T07:00:00+00:00"}).encode() for i in range(N_DEAD)]
    log = tmp_path / "writer.log"
    archive = Archive(url)

    def rows(table=VerdictRow) -> int:  # noqa: ANN001
        with archive.engine.connect() as c:
            return c.scalar(select(func.count()).select_from(table)) or 0

    produce(kafka_broker, topics["verdicts_topic"], verdicts[:N_FIRST])
    produce(kafka_broker, topics["verdicts_topic"], verdicts[-N_ABORTED:], abort=True)
    produce(kafka_broker, topics["deadletter_topic"], dead)

    # 1. SIGKILL the writer mid-stream, crash PostgreSQL, restart both.
    first = Writer(env, log).start()
    try:
        wait_for(lambda: rows() >= 20, 180, "the first rows", log)
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(30) == -signal.SIGKILL
    finally:
        first.stop()
    at_kill = rows()
    archive.engine.dispose()
    postgres_server.crash()
    postgres_server.start()
    second = Writer(env, log).start()
    try:
        wait_for(lambda: rows() == N_FIRST and rows(DeadLetterRow) == N_DEAD, 180, "the first half", log)
        # 2. PostgreSQL dies while the writer is idle; new verdicts arrive; the writer holds them and retries.
        archive.engine.dispose()
        postgres_server.crash()
        produce(kafka_broker, topics["verdicts_topic"], verdicts[N_FIRST:N_FIRST + N_SECOND])
        wait_for(lambda: second.metric("skyqa_archive_write_failures_total") > 0, 180, "a failed write", log)
        postgres_server.start()
        wait_for(lambda: rows() == N_FIRST + N_SECOND, 180, "every verdict", log)
        wait_for(lambda: uncommitted(kafka_broker, group, [topics["verdicts_topic"], topics["deadletter_topic"]]) == 0,
                 120, "offsets committed past the last record", log)
        rewritten = second.metric("skyqa_archive_records_written_total", kind="verdict")
        assert second.proc.send_signal(signal.SIGTERM) is None and second.proc.wait(60) == 0
    finally:
        second.stop()

    with archive.engine.connect() as c:
        ids = c.scalars(select(VerdictRow.exposure_id)).all()
        latest = c.scalar(select(func.count()).select_from(Exposure).where(Exposure.latest_verdict_id.is_not(None)))
    expected = [f"k{i:04d}" for i in range(N_FIRST + N_SECOND)]
    assert sorted(ids) == expected  # each exactly once; the aborted transaction's verdicts never land
    assert latest == N_FIRST + N_SECOND and rows(DeadLetterRow) == N_DEAD
    # The second writer re-read what the first had stored but not yet committed: the upsert absorbed it.
    assert rewritten >= N_FIRST + N_SECOND - at_kill
    print(f"\nexactly-once: {at_kill} verdict rows when the writer was SIGKILLed, second writer wrote "
          f"{rewritten:.0f} verdict records for {N_FIRST + N_SECOND - at_kill} missing ones; final "
          f"{len(ids)} verdict rows for {N_FIRST + N_SECOND} published (+{N_ABORTED} aborted), {N_DEAD} dead letters")
    archive.close()
