"""The hostile-input corpus (tests/hostile_corpus.py) through `skyqa classify`, the directory daemon and the
Kafka daemon: every file ends in exactly one verdict or one rejection with its reason, nothing else.

One CLI run, one directory daemon and one Kafka daemon serve the whole corpus (real models, local inference,
a real broker), so the corpus costs three process start-ups, not one per file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from skyqa.service.archive.store import Archive
from skyqa.service.stream.outcome import DeadLetterRecord
from skyqa.service.verdict import Verdict
from tests.hostile_corpus import VERDICT, write_corpus
from tests.kafka_fixture import KafkaBroker, free_port, kafka_broker  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_") or k == "SKYQA_DATA_DIR"}
    return {**env, "SKYQA_MODELS__REPOSITORY": str(MODELS), "SKYQA_WORKERS": "1", "PYTHONUNBUFFERED": "1",
            "SKYQA_SERVE__HTTP_HOST": "127.0.0.1", "SKYQA_SERVE__HTTP_PORT": str(free_port()), **settings}


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"daemon died (exit {proc.returncode}):\n{log.read_text()[-4000:]}"
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("corpus")
    return directory, write_corpus(directory)


def test_corpus_has_every_kind(corpus: tuple[Path, dict[str, str]]) -> None:
    _, expected = corpus
    assert len(expected) >= 20
    assert set(expected.values()) >= {VERDICT, "not_fits", "truncated", "no_ccd_hdus", "no_usable_ccd",
                                      "too_many_pixels", "too_many_hdus", "invalid_exposure_id"}


def test_classify_cli_gives_a_verdict_or_one_error_line_per_file(corpus: tuple[Path, dict[str, str]]) -> None:
    directory, expected = corpus
    proc = subprocess.run([sys.executable, "-m", "skyqa.cli", "classify", "--json", str(directory)],
                          cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1  # documented: 1 when some file has no verdict
    verdicts = [Verdict.model_validate_json(line) for line in proc.stdout.splitlines()]
    assert len(verdicts) == sum(v == VERDICT for v in expected.values())
    errors = [line for line in proc.stderr.splitlines() if line.startswith("skyqa classify: ")]
    got = {}
    for line in errors:
        reason, detail = line.removeprefix("skyqa classify: ").split(": ", 1)
        name = Path(detail.split(":", 1)[0].split("[", 1)[0]).name
        assert name not in got, f"two errors for {name}"
        got[name] = reason
    assert got == {name: reason for name, reason in expected.items() if reason != VERDICT}
    mixed = next(v for v in verdicts if v.exposure_id == "7002")
    assert set(mixed.skipped_ccds) == {"STAMP", "SLIVER"} and mixed.ccds == 3


def test_dir_daemon_turns_each_file_into_one_verdict_or_rejection(corpus: tuple[Path, dict[str, str]],
                                                                  tmp_path: Path) -> None:
    directory, expected = corpus
    root = tmp_path / "root"
    watch = root / "a" / "b" / "watch"  # '../../etc/passwd' from here would land in root/a/etc
    watch.mkdir(parents=True)
    log = tmp_path / "daemon.log"
    archive_url = f"sqlite:///{tmp_path / 'archive.db'}"
    # Two workers: each next file is started while the current one finishes (hostile ones included).
    env = clean_env(SKYQA_SERVE__WATCH_INTERVAL_S="0.2", SKYQA_FETCH__SPOOL_DIR=str(root / "spool"),
                    SKYQA_ARCHIVE__URL=archive_url, SKYQA_WORKERS="2")
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "skyqa.service.stream.cli", "--source", "dir",
                                 "--watch-dir", str(watch)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for name in expected:  # one at a time, as files arrive: the daemon must go on after each
            (watch / name).write_bytes((directory / name).read_bytes())

        def settled() -> bool:
            ledger = watch / "verdicts" / "processed.tsv"
            done = len(ledger.read_text().splitlines()) if ledger.exists() else 0
            return done + len(list((watch / "rejected").glob("*.reason.json"))) >= len(expected)

        wait_until(settled, proc, log, "every corpus file", 600)
        assert proc.poll() is None
        assert proc.send_signal(signal.SIGTERM) is None and proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    ledger = dict(line.split("\t") for line in (watch / "verdicts" / "processed.tsv").read_text().splitlines())
    rejected = {p.name.removesuffix(".reason.json"): DeadLetterRecord.model_validate_json(p.read_text())
                for p in (watch / "rejected").glob("*.reason.json")}
    assert set(ledger) | set(rejected) == set(expected) and not set(ledger) & set(rejected)
    assert {n: r.reason for n, r in rejected.items()} == {n: e for n, e in expected.items() if e != VERDICT}
    assert set(ledger) == {n for n, e in expected.items() if e == VERDICT}
    verdict_files = {p.name for p in (watch / "verdicts").glob("*.json")}
    assert verdict_files == {f"{exposure}.json" for exposure in ledger.values()}
    assert all((watch / "rejected" / name).is_file() for name in rejected)  # the bad file itself moved aside
    outside = {p for p in files_under(root) if not str(p).startswith("a/b/watch/")}
    assert outside == set(), f"written outside the watch directory: {outside}"
    counts = Archive(archive_url).counts()  # and every outcome archived once
    assert counts["dead_letters"] == len(rejected) and counts["exposures"] == len(set(ledger.values()))


def test_kafka_daemon_turns_each_event_into_one_verdict_or_dead_letter(
        corpus: tuple[Path, dict[str, str]], kafka_broker: KafkaBroker, tmp_path: Path) -> None:  # noqa: F811
    directory, expected = corpus
    topics = kafka_broker.unique_topics("hostile")
    template = {"schema_version": 1, "instrument": "MegaCam", "obs_time": "2026-01-01T00:00:00+00:00"}
    events = [json.dumps({**template, "exposure_id": f"hostile-{i:02d}", "uri": (directory / name).as_uri()}).encode()
              for i, name in enumerate(expected)]
    reasons = {i: reason for i, reason in enumerate(expected.values()) if reason != VERDICT}
    hostile_ids = {"../../etc/passwd": "invalid_exposure_id", "a\u0000b": "invalid_exposure_id",
                   ".hidden": "invalid_exposure_id", "9" * 2048: "schema_violation"}
    for exposure, reason in hostile_ids.items():
        reasons[len(events)] = reason
        events.append(json.dumps({**template, "exposure_id": exposure,
                                  "uri": (directory / "control.fits").as_uri()}).encode())
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for value in events:
        producer.send(topics["events_topic"], value).get(timeout=30)
    producer.close()
    env = clean_env(**{f"SKYQA_KAFKA__{k.upper()}": v for k, v in topics.items()},
                    SKYQA_KAFKA__BOOTSTRAP_SERVERS=kafka_broker.bootstrap,
                    SKYQA_KAFKA__TRANSACTIONAL_ID=f"{topics['group_id']}-0",
                    SKYQA_FETCH__ALLOWED_ROOTS=json.dumps([str(directory)]),
                    SKYQA_FETCH__SPOOL_DIR=str(tmp_path / "spool"),
                    SKYQA_PREVIEWS__LOCATION=str(tmp_path / "previews"))
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "skyqa.service.stream.cli", "--source", "kafka"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        verdicts: list[Verdict] = []
        letters: list[DeadLetterRecord] = []

        def all_out() -> bool:
            verdicts[:] = [Verdict.model_validate_json(r.value) for r in
                           kafka_broker.read_committed(topics["verdicts_topic"], idle_s=0.5, timeout_s=5)]
            letters[:] = [DeadLetterRecord.model_validate_json(r.value) for r in
                          kafka_broker.read_committed(topics["deadletter_topic"], idle_s=0.5, timeout_s=5)]
            return len(verdicts) + len(letters) >= len(events)

        wait_until(all_out, proc, log, "one output per event", 600)
        assert proc.send_signal(signal.SIGTERM) is None and proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    good = [json.loads(events[i])["exposure_id"] for i in range(len(events)) if i not in reasons]
    verdicts = [Verdict.model_validate_json(r.value)
                for r in kafka_broker.read_committed(topics["verdicts_topic"], at_least=len(good))]
    letters = [DeadLetterRecord.model_validate_json(r.value)
               for r in kafka_broker.read_committed(topics["deadletter_topic"], at_least=len(reasons))]
    assert Counter(v.exposure_id for v in verdicts) == Counter(good)
    assert Counter(dl.source.offset for dl in letters) == Counter(list(reasons))
    assert {dl.source.offset: dl.reason for dl in letters} == reasons
    assert not any((tmp_path / "spool").rglob("*")), "file:// events are read in place: nothing spooled"
    # The Kafka daemon writes a focal-plane preview per verdict; hostile ids never name a file.
    assert sorted(p.name for p in (tmp_path / "previews").iterdir()) == sorted(f"{e}.webp" for e in good)
