"""scripts/kafka.sh formats broker storage with a cluster id that can never be taken for an option.

A random base64url id starts with '-' once in 64 draws; passed as `-t ID` it made `kafka-storage format`
fail and, with it, every Kafka test of that run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.kafka_fixture import SCRIPT, KafkaBroker, free_port

pytestmark = [pytest.mark.integration]


def test_cluster_ids_never_start_with_a_dash() -> None:
    ids = subprocess.run(["bash", str(SCRIPT), "cluster-id", "20000"], check=True, capture_output=True,
                         text=True).stdout.split()
    assert len(ids) == len(set(ids)) == 20000  # ~310 raw draws of these would have started with '-'
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_broker_starts_even_with_a_dash_leading_cluster_id(tmp_path: Path) -> None:
    subprocess.run(["bash", str(SCRIPT), "fetch"], check=True)
    broker = KafkaBroker(tmp_path / "kafka", free_port())
    cluster_id = "-" + "Ab1_" * 5 + "x"  # 22 base64url characters, a valid id the old `-t ID` misread
    env = {**os.environ, "KAFKA_CLUSTER_ID": cluster_id}
    try:
        subprocess.run(["bash", str(SCRIPT), "start", str(broker.data_dir), str(broker.port)], check=True, env=env)
        broker.create_topics("probe")  # it serves
        meta = (broker.data_dir / "logs" / "meta.properties").read_text()
        assert f"cluster.id={cluster_id}\n" in meta
    finally:
        broker.stop()
