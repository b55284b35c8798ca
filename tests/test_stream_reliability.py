"""The daemon against a real Kafka broker (and a real Triton): nothing lost, exactly one output per event.

Each test publishes a dozen events for tiny simulated exposures, runs `skyqa serve` as a subprocess with the
real Classifier, breaks something mid-stream, and then reads the verdict and dead-letter topics as a
downstream read_committed consumer would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from skyqa.service.pipeline.histovector import CellScaler
from skyqa.service.labels import CellLabel, Label, LabelMap
from skyqa.service.stream.outcome import DeadLetterRecord
from skyqa.service.stream.replay import night_events
from skyqa.service.verdict import Verdict
from tests.kafka_fixture import KafkaBroker, free_port, kafka_broker  # noqa: F401  (fixture)
from tests.triton_fixture import SCRIPT as TRITON_SCRIPT
from tests.triton_fixture import TritonServer, triton_server  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
N_EXPOSURES = 12


# -- test material ------------------------------------------------------------------------------------------------
def curate(repo: Path) -> Path:
    """A scaler and a label map beside every DESOM-2 version of a contract-only repository (tests/onnx_factory)."""
    for version_dir in (repo / "desom2").iterdir():
        if version_dir.is_dir():
            CellScaler(np.zeros(625), np.full(625, 0.05)).save(version_dir / "scaler.json")
            LabelMap(cells={i: CellLabel(label=Label.GOOD, source="expert") for i in range(0, 400, 2)}).save(
                version_dir / "labels.json")
    return repo


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skyqa.simulator.night import simulate_night

    out = tmp_path_factory.mktemp("night")
    simulate_night(out, N_EXPOSURES, seed=7, size="tiny", progress=False)
    return out


@pytest.fixture(scope="module")
def models() -> Path:
    """The shipped models: the daemon under test is the one operators run."""
    return ROOT / "models"


# -- the daemon as a subprocess ------------------------------------------------------------------------------------
@dataclass
class Daemon:
    env: dict[str, str]
    log: Path
    topics: dict[str, str]
    proc: subprocess.Popen | None = None
    http_port: int = field(default_factory=free_port)
    starts: int = 0

    def start(self, *args: str) -> Daemon:
        self.starts += 1
        env = {**self.env, "SKYQA_SERVE__HTTP_PORT": str(self.http_port)}
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "skyqa.service.stream.cli", "--source", "kafka", *args],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def signal(self, sig: int, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture()
def daemon(kafka_broker: KafkaBroker, night: Path, models: Path, tmp_path: Path) -> Iterator[Daemon]:  # noqa: F811
    topics = kafka_broker.unique_topics("rel")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_") or k == "SKYQA_DATA_DIR"}
    env.update({f"SKYQA_KAFKA__{k.upper()}": v for k, v in topics.items()})
    env.update({
        "SKYQA_KAFKA__BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "SKYQA_KAFKA__TRANSACTIONAL_ID": f"{topics['group_id']}-0",
        "SKYQA_FETCH__ALLOWED_ROOTS": json.dumps([str(night), str(tmp_path / "extra")]),
        "SKYQA_FETCH__SPOOL_DIR": str(tmp_path / "spool"),
        "SKYQA_MODELS__REPOSITORY": str(models),
        "SKYQA_SERVE__HTTP_HOST": "127.0.0.1",
        "SKYQA_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    d = Daemon(env, tmp_path / "daemon.log", topics)
    try:
        yield d
    finally:
        d.stop()


# -- helpers -----------------------------------------------------------------------------------------------------
def publish(broker: KafkaBroker, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for value in values:
        producer.send(topic, value).get(timeout=30)
    producer.close()


def good_events(night: Path) -> list[bytes]:
    return [event.to_bytes() for event in night_events(night)]


def committed(broker: KafkaBroker, group: str) -> int:
    """Events whose transaction committed: the group's committed offsets, summed over partitions."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return sum(meta.offset for meta in offsets.values() if meta.offset > 0)
    finally:
        admin.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, daemon: Daemon) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (KafkaError, OSError):  # broker restarting: ask again
            pass
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; daemon log tail:\n{daemon.log.read_text()[-4000:]}")


def outputs(broker: KafkaBroker, topics: dict[str, str], verdicts_expected: int = 0,
            letters_expected: int = 0) -> tuple[list[Verdict], list[DeadLetterRecord]]:
    verdicts = [Verdict.model_validate_json(r.value)
                for r in broker.read_committed(topics["verdicts_topic"], at_least=verdicts_expected)]
    letters = [DeadLetterRecord.model_validate_json(r.value)
               for r in broker.read_committed(topics["deadletter_topic"], at_least=letters_expected)]
    return verdicts, letters


def assert_exactly_once(broker: KafkaBroker, topics: dict[str, str], events: list[bytes],
                        expected_reasons: dict[int, str] | None = None) -> list[Verdict]:
    """One output per event offset: a verdict for each good event, a dead letter with the right reason for the rest."""
    expected_reasons = expected_reasons or {}
    good_ids = [json.loads(events[i])["exposure_id"] for i in range(len(events)) if i not in expected_reasons]
    verdicts, letters = outputs(broker, topics, len(good_ids), len(expected_reasons))
    assert Counter(v.exposure_id for v in verdicts) == Counter(good_ids)
    assert Counter(dl.source.offset for dl in letters) == Counter(list(expected_reasons))
    assert {dl.source.offset: dl.reason for dl in letters} == expected_reasons
    return verdicts


# -- (a) SIGKILL mid-stream ----------------------------------------------------------------------------------------
def test_sigkill_mid_stream_loses_and_duplicates_nothing(kafka_broker: KafkaBroker, night: Path,  # noqa: F811
                                                         daemon: Daemon) -> None:
    topics = daemon.topics
    events = good_events(night)
    assert len(events) == N_EXPOSURES
    publish(kafka_broker, topics["events_topic"], events)
    group = topics["group_id"]
    for kill_after in (2, 5, 8):
        daemon.start()
        wait_for(lambda n=kill_after: committed(kafka_broker, group) >= n, 120, f"{kill_after} commits", daemon)
        assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    wait_for(lambda: committed(kafka_broker, group) >= N_EXPOSURES, 120, "all commits", daemon)
    assert daemon.signal(signal.SIGTERM) == 0
    verdicts = assert_exactly_once(kafka_broker, topics, events)
    # Re-processing after a crash is deterministic: same file, same models, same verdict.
    assert all(v.models == verdicts[0].models for v in verdicts)


# -- a zombie: a second process with the same replica identity -------------------------------------------------
def test_zombie_replica_is_fenced_and_exits(kafka_broker: KafkaBroker, night: Path, daemon: Daemon,  # noqa: F811
                                            tmp_path: Path) -> None:
    topics = daemon.topics
    events = good_events(night)
    publish(kafka_broker, topics["events_topic"], events)
    daemon.start()
    wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= 2, 120, "2 commits", daemon)
    successor = Daemon(dict(daemon.env), tmp_path / "successor.log", topics).start()  # same transactional id
    try:
        assert daemon.proc is not None
        assert daemon.proc.wait(120) == 75  # fenced: clean exit, for the orchestrator to restart
        wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= N_EXPOSURES, 120, "all commits", successor)
        assert successor.signal(signal.SIGTERM) == 0
    finally:
        successor.stop()
    assert '"event": "fenced_exiting"' in daemon.log.read_text()
    assert_exactly_once(kafka_broker, topics, events)


# -- (b) Triton stopped for 30 s mid-stream -----------------------------------------------------------------------
def test_triton_outage_delays_but_never_dead_letters(kafka_broker: KafkaBroker, night: Path,  # noqa: F811
                                                     daemon: Daemon, triton_server: TritonServer,  # noqa: F811
                                                     tmp_path: Path) -> None:
    # The client side needs the same model versions as the server, plus the curation files beside DESOM-2.
    models = curate(Path(shutil.copytree(triton_server.models, tmp_path / "triton-models")))
    base = triton_server.models.parent  # the fixture's layout: models/, repository/, run/
    triton_env = {**os.environ, "TRITON_RUN_DIR": str(base / "run")}
    http_port, grpc_port = triton_server.http_url.rsplit(":", 1)[1], triton_server.grpc_url.rsplit(":", 1)[1]
    daemon.env.update({"SKYQA_MODELS__REPOSITORY": str(models), "SKYQA_INFERENCE__TRITON_URL": triton_server.grpc_url,
                       "SKYQA_INFERENCE__TIMEOUT_S": "3"})
    topics = daemon.topics
    events = good_events(night)
    publish(kafka_broker, topics["events_topic"], events)
    daemon.start("--inference", "triton")
    wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= 3, 120, "3 commits", daemon)
    subprocess.run(["bash", str(TRITON_SCRIPT), "stop"], check=True, env=triton_env)
    stopped = time.monotonic()
    try:
        wait_for(lambda: daemon.get("/readyz")[0] == 503, 30, "/readyz to report the outage", daemon)
        stalled = committed(kafka_broker, topics["group_id"])
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
        assert committed(kafka_broker, topics["group_id"]) == stalled < N_EXPOSURES  # waiting, not skipping
    finally:
        subprocess.run(["bash", str(TRITON_SCRIPT), "start", str(base / "repository"), http_port, grpc_port,
                        str(free_port())], check=True, env=triton_env)
    wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= N_EXPOSURES, 180, "all commits", daemon)
    assert daemon.get("/readyz")[0] == 200
    assert daemon.signal(signal.SIGTERM) == 0
    assert_exactly_once(kafka_broker, topics, events)  # no dead letter: an outage is never the event's fault
    assert '"event": "event_retry"' in daemon.log.read_text()


# -- (c) broker restart mid-stream -------------------------------------------------------------------------------
def test_broker_restart_mid_stream(kafka_broker: KafkaBroker, night: Path, daemon: Daemon) -> None:  # noqa: F811
    topics = daemon.topics
    events = good_events(night)
    publish(kafka_broker, topics["events_topic"], events)
    daemon.start()
    wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= 3, 120, "3 commits", daemon)
    kafka_broker.restart()
    wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= N_EXPOSURES, 180, "all commits", daemon)
    assert daemon.signal(signal.SIGTERM) == 0
    assert_exactly_once(kafka_broker, topics, events)


# -- (d) bad events end in the dead-letter topic with the right reason -------------------------------------------
def test_bad_events_are_dead_lettered_with_their_reason(kafka_broker: KafkaBroker, night: Path,  # noqa: F811
                                                        daemon: Daemon, tmp_path: Path) -> None:
    topics = daemon.topics
    good = good_events(night)[:4]
    template = json.loads(good[0])
    files = sorted(p for p in night.iterdir() if p.name.endswith(".fits.fz"))
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "truncated.fits.fz").write_bytes(files[0].read_bytes()[: files[0].stat().st_size // 2])
    (extra / "notes.fits").write_text("observing log, not an image\n" * 100)
    (extra / "huge.fits.fz").write_bytes(files[0].read_bytes() + bytes(4 * 1024 * 1024))
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(files[1], outside / "stray.fits.fz")

    def event(exposure_id: str, path: Path) -> bytes:
        return json.dumps({**template, "exposure_id": exposure_id, "uri": path.as_uri(), "checksum": None}).encode()

    bad = {
        b"{this is not json": "malformed_json",
        json.dumps({**template, "schema_version": 2}).encode(): "schema_violation",
        event("missing", night / "nope.fits.fz"): "missing_file",
        event("truncated", extra / "truncated.fits.fz"): "truncated",
        event("notes", extra / "notes.fits"): "not_fits",
        event("stray", outside / "stray.fits.fz"): "disallowed_uri",
        event("huge", extra / "huge.fits.fz"): "too_large",
        json.dumps({**template, "exposure_id": "tampered", "checksum": "sha256:" + "0" * 64}).encode(): "checksum_mismatch",
    }
    events = [good[0], *list(bad)[:4], good[1], *list(bad)[4:], good[2], good[3]]
    reasons = {i: bad[e] for i, e in enumerate(events) if e in bad}
    publish(kafka_broker, topics["events_topic"], events)
    daemon.env["SKYQA_FETCH__MAX_BYTES"] = str(3 * 1024 * 1024)
    daemon.start()
    wait_for(lambda: committed(kafka_broker, topics["group_id"]) >= len(events), 120, "all commits", daemon)
    status, metrics = daemon.get("/metrics")
    assert status == 200
    assert b'skyqa_dead_letters_total{reason="too_large"} 1.0' in metrics
    assert b'skyqa_verdicts_total{label=' in metrics
    assert all(f'skyqa_verdicts_total{{label="{label.value}"}}'.encode() in metrics for label in Label)  # from 0
    assert f'skyqa_consumer_lag_messages{{partition="0",topic="{topics["events_topic"]}"}}'.encode() in metrics
    assert b'skyqa_model_info{' in metrics
    assert daemon.signal(signal.SIGTERM) == 0
    assert_exactly_once(kafka_broker, topics, events, reasons)
    _, letters = outputs(kafka_broker, topics, len(events) - len(reasons), len(reasons))
    malformed = next(dl for dl in letters if dl.reason == "malformed_json")
    assert (malformed.stage, malformed.exposure_id, malformed.event_text) == ("decode", None, "{this is not json")
    assert next(dl for dl in letters if dl.reason == "truncated").stage == "classify"
