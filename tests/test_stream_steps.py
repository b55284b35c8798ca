"""The step chain, the directory source and the health server, with a stand-in classifier (no models needed).

The Kafka sink and the real Classifier are exercised in test_stream_reliability.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from skyqa.service.config import FetchConfig
from skyqa.service.pipeline.exposure import ExposureError
from skyqa.service.labels import Label
from skyqa.service.stream.dir_source import DirSource, DirState, WriteFiles
from skyqa.service.stream.errors import Transient
from skyqa.service.stream.fetch import Fetcher, file_checksum
from skyqa.service.stream.health import Health, HealthServer
from skyqa.service.stream.outcome import DeadLetterRecord, Message, Origin, Outcome
from skyqa.service.stream.steps import chain
from skyqa.service.verdict import ModelVersions, PhysicalMetrics, Verdict

FITS = b"SIMPLE  =                    T" + b" " * 2850


class StandInClassifier:
    """Classifier's interface: `bad*` exposures raise ExposureError, `down` makes every call fail like Triton down."""

    def __init__(self) -> None:
        self.down = False
        self.calls: list[Path] = []
        self.expected: list[Path] = []  # what the source announced before each call (`expect`)
        self.released: list[bool | None] = []  # `finish_preview` calls: whether the last file was still there

    def expect(self, path: Path) -> None:
        self.expected.append(path)

    def finish_preview(self) -> None:  # the file the last call read after its verdict: there still?
        self.released.append(self.calls[-1].exists() if self.calls else None)

    def classify(self, path: Path, exposure_id: str | None = None) -> Verdict:
        self.calls.append(path)
        if self.down:
            raise ConnectionError("inference backend unreachable")
        if (exposure_id or path.name).startswith("bad"):  # a spooled download's name holds random hex digits
            raise ExposureError("not_fits", "stand-in says not FITS")
        return Verdict(exposure_id=exposure_id or path.name.split(".")[0], label=Label.GOOD, usable=True, cell=(1, 2),
                       cell_index=41, distance=0.5, histovector=[0] * 625, metrics=PhysicalMetrics(), detections=10,
                       cutouts=5, ccds=4, dead_ccds=[], timings_s={"total": 0.1}, models=ModelVersions(desom1="1", desom2="1"))


class Collect:
    def __init__(self) -> None:
        self.outcomes: list[Message[Outcome]] = []

    def submit(self, message: Message[Outcome]) -> None:
        self.outcomes.append(message)


def event_bytes(path: Path, **change: object) -> bytes:
    fields = {"schema_version": 1, "exposure_id": path.name.split(".")[0], "uri": path.as_uri(), "instrument": "MegaCam",
              "obs_time": datetime.now(UTC).isoformat(), "checksum": file_checksum(path) if path.exists() else None}
    return json.dumps({**fields, **change}).encode()


def submit(step, raw: bytes, offset: int = 0) -> None:  # noqa: ANN001
    origin = Origin("events", 3, offset, raw, time.time())
    step.submit(Message(raw, origin))


@pytest.fixture()
def night(tmp_path: Path) -> Path:
    d = tmp_path / "night"
    d.mkdir()
    for name in ("e1.fits", "e2.fits", "bad.fits"):
        (d / name).write_bytes(FITS)
    return d


def test_chain_good_and_rejected_events(tmp_path: Path, night: Path) -> None:
    sink, classifier = Collect(), StandInClassifier()
    step = chain(Fetcher(FetchConfig(allowed_roots=[night])), classifier, sink)
    submit(step, event_bytes(night / "e1.fits"), 0)
    submit(step, b"{oops", 1)
    submit(step, event_bytes(night / "e2.fits", schema_version=7), 2)
    submit(step, event_bytes(night / "gone.fits"), 3)
    submit(step, event_bytes(night / "bad.fits"), 4)
    submit(step, event_bytes(night / "e2.fits", checksum="sha256:" + "0" * 64), 5)
    submit(step, event_bytes(tmp_path / "x.fits", uri="file:///etc/passwd"), 6)

    outs = [m.payload for m in sink.outcomes]
    assert outs[0].verdict is not None and outs[0].key == b"e1"
    assert Verdict.model_validate_json(outs[0].value).exposure_id == "e1"
    reasons = [o.rejection.reason for o in outs[1:]]
    assert reasons == ["malformed_json", "schema_violation", "missing_file", "not_fits", "checksum_mismatch",
                       "disallowed_uri"]
    letter = DeadLetterRecord.model_validate_json(outs[1].value)
    assert (letter.stage, letter.exposure_id, letter.source.partition, letter.source.offset) == ("decode", None, 3, 1)
    assert base64.b64decode(letter.event_b64) == b"{oops"
    letter = DeadLetterRecord.model_validate_json(outs[4].value)
    assert (letter.stage, letter.exposure_id, outs[4].key) == ("classify", "bad", b"bad")
    assert classifier.calls == [(night / "e1.fits").resolve(), (night / "bad.fits").resolve()]


def test_a_spooled_download_outlives_the_reads_after_its_verdict(tmp_path: Path, night: Path) -> None:
    fsspec.filesystem("memory").pipe("/bucket/e1.fits", FITS)
    sink, classifier = Collect(), StandInClassifier()
    step = chain(Fetcher(FetchConfig(allowed_roots=[night], allowed_hosts=["bucket"], spool_dir=tmp_path / "spool")),
                 classifier, sink)
    submit(step, event_bytes(night / "e1.fits", uri="memory://bucket/e1.fits"), 0)
    submit(step, event_bytes(night / "e2.fits"), 1)  # in place: nothing to wait for
    assert [o.payload.verdict is not None for o in sink.outcomes] == [True, True]
    assert classifier.released == [True]  # waited for once, before the download was deleted
    assert list((tmp_path / "spool").iterdir()) == []


def test_the_kafka_daemon_announces_only_events_whose_file_it_would_read_in_place(tmp_path: Path, night: Path) -> None:
    from skyqa.service.stream.serve import announce_event

    classifier = StandInClassifier()
    (night / "alias.fits").symlink_to(night / "e1.fits")
    (tmp_path / "outside.fits").write_bytes(FITS)
    upcoming = announce_event(Fetcher(FetchConfig(allowed_roots=[night])), classifier)
    for raw in (event_bytes(night / "alias.fits"), event_bytes(tmp_path / "outside.fits"),
                event_bytes(night / "e2.fits", uri="https://archive.example/e2.fits"), b"{oops",
                event_bytes(night / "gone.fits")):
        upcoming(raw)
    assert classifier.expected == [(night / "e1.fits").resolve()]  # resolved as Fetch hands it over


def test_backend_failure_is_transient_not_a_dead_letter(night: Path) -> None:
    sink, classifier = Collect(), StandInClassifier()
    classifier.down = True
    step = chain(Fetcher(FetchConfig(allowed_roots=[night])), classifier, sink)
    with pytest.raises(Transient):
        submit(step, event_bytes(night / "e1.fits"))
    assert sink.outcomes == []


# -- directory source -----------------------------------------------------------------------------------------
def run_dir_source(watch: Path, classifier: StandInClassifier, until, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    stop = threading.Event()
    step = chain(Fetcher(FetchConfig(allowed_roots=[watch])), classifier, WriteFiles(DirState(watch), Collect()))
    source = DirSource(watch, 0.05, step, stop, upcoming=classifier.expect)
    source.backoff.base_s = 0.01
    thread = threading.Thread(target=source.run)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert until(), "directory source did not reach the expected state"


def test_dir_source_processes_each_file_once_across_restarts(tmp_path: Path) -> None:
    watch = tmp_path / "incoming"
    watch.mkdir()
    for name in ("e1.fits", "e2.fits.fz", "bad.fits", "notes.txt"):
        (watch / name).write_bytes(FITS)
    classifier = StandInClassifier()
    verdicts, rejected = watch / "verdicts", watch / "rejected"
    run_dir_source(watch, classifier, lambda: (verdicts / "e2.json").exists() and (rejected / "bad.fits").exists()
                   and (verdicts / "e1.json").exists())
    assert json.loads((verdicts / "e1.json").read_text())["label"] == "Good"
    letter = DeadLetterRecord.model_validate_json((rejected / "bad.fits.reason.json").read_text())
    assert (letter.reason, letter.stage) == ("not_fits", "classify")
    assert not (watch / "bad.fits").exists() and (watch / "notes.txt").exists()
    assert len(classifier.calls) == 3
    # Before each file, the classifier heard of the one after it (so it can start it early).
    assert [p.name for p in classifier.calls] == ["bad.fits", "e1.fits", "e2.fits.fz"]
    assert [p.name for p in classifier.expected] == ["e1.fits", "e2.fits.fz"]

    # A restart remembers what was done; only the new file is processed.
    (watch / "e3.fits").write_bytes(FITS)
    run_dir_source(watch, classifier, lambda: (verdicts / "e3.json").exists())
    assert [p.name for p in classifier.calls[3:]] == ["e3.fits"]


def test_dir_source_waits_for_complete_files_and_for_the_backend(tmp_path: Path) -> None:
    watch = tmp_path / "incoming"
    watch.mkdir()
    classifier = StandInClassifier()
    classifier.down = True
    growing = watch / "e1.fits"
    growing.write_bytes(FITS[:100])

    def grow_then_recover() -> None:
        time.sleep(0.3)
        growing.write_bytes(FITS)  # still being written during the first polls
        time.sleep(0.5)
        classifier.down = False

    threading.Thread(target=grow_then_recover).start()
    run_dir_source(watch, classifier, lambda: (watch / "verdicts" / "e1.json").exists())
    assert not (watch / "rejected" / "e1.fits").exists()
    assert all(p.stat().st_size == len(FITS) for p in classifier.calls)


# -- health server --------------------------------------------------------------------------------------------
def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_health_endpoints() -> None:
    backend = {"up": False}
    health = Health({"inference": lambda: backend["up"], "broker": lambda: True}, stuck_after_s=0.5, cache_s=0)
    server = HealthServer(health, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["checks"] == {"inference": False, "broker": True}
        backend["up"] = True
        assert get(f"{base}/readyz")[0] == 200
        status, body = get(f"{base}/metrics")
        assert status == 200 and b"skyqa_ready 1.0" in body and b"skyqa_events_consumed_total" in body
        assert get(f"{base}/healthz")[0] == 200
        time.sleep(0.6)  # no beat: the loop is stuck
        assert get(f"{base}/healthz")[0] == 503
        health.beat()
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/nope")[0] == 404
    finally:
        server.stop()

