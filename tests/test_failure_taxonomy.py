"""Which failures are retried and which are dead-lettered (skyqa.service.stream.steps), and ids that are data.

A stand-in classifier raises on demand (the real Classifier with real files is in test_hostile_inputs.py).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from skyqa.service.config import FetchConfig
from skyqa.service.pipeline.ids import InvalidId, normalise_exposure_id, safe_join
from skyqa.service.stream.dir_source import DirSource, DirState, WriteFiles
from skyqa.service.stream.errors import Transient
from skyqa.service.stream.fetch import Fetcher
from skyqa.service.stream.outcome import DeadLetterRecord
from tests.test_stream_steps import FITS, Collect, StandInClassifier, event_bytes, submit


class BuggyClassifier(StandInClassifier):
    """Files named poison* hit an unforeseen bug, the way a 20 x 20 CCD once hit sliding_window_view."""

    def classify(self, path: Path, exposure_id: str | None = None):  # noqa: ANN201
        if path.name.startswith("poison"):
            self.calls.append(path)
            raise ValueError("window shape cannot be larger than input array shape")
        return super().classify(path, exposure_id)


def processing_errors(outcome: str) -> float:
    return REGISTRY.get_sample_value("skyqa_processing_errors_total", {"outcome": outcome}) or 0.0


@pytest.fixture()
def night(tmp_path: Path) -> Path:
    for name in ("e1.fits", "poison.fits"):
        (tmp_path / name).write_bytes(FITS)
    return tmp_path


def test_unexpected_error_is_retried_then_dead_lettered_as_processing_error(night: Path) -> None:
    sink, classifier = Collect(), BuggyClassifier()
    step = chain_of(night, classifier, sink, max_attempts=3)
    before = processing_errors("dead_lettered"), processing_errors("retried")
    for _ in range(2):
        with pytest.raises(Transient, match="processing_error"):
            submit(step, event_bytes(night / "poison.fits"), offset=7)
    submit(step, event_bytes(night / "poison.fits"), offset=7)
    [out] = sink.outcomes
    letter = DeadLetterRecord.model_validate_json(out.payload.value)
    assert (letter.reason, letter.stage, letter.source.offset) == ("processing_error", "classify", 7)
    assert letter.detail.startswith("ValueError: window shape cannot be larger than input array shape")
    assert len(classifier.calls) == 3
    assert (processing_errors("dead_lettered"), processing_errors("retried")) == (before[0] + 1, before[1] + 2)
    submit(step, event_bytes(night / "e1.fits"), offset=8)  # the next event goes through
    assert sink.outcomes[-1].payload.verdict is not None


def test_attempts_are_counted_per_event(night: Path) -> None:
    sink, classifier = Collect(), BuggyClassifier()
    step = chain_of(night, classifier, sink, max_attempts=2)
    for offset in (1, 2, 1):  # another event in between starts the count afresh
        with pytest.raises(Transient):
            submit(step, event_bytes(night / "poison.fits"), offset=offset)
    submit(step, event_bytes(night / "poison.fits"), offset=1)
    assert [json.loads(o.payload.value)["reason"] for o in sink.outcomes] == ["processing_error"]


def test_dependency_down_is_retried_without_limit(night: Path) -> None:
    sink, classifier = Collect(), StandInClassifier()
    classifier.down = True
    step = chain_of(night, classifier, sink, max_attempts=2)
    for _ in range(10):
        with pytest.raises(Transient, match="ConnectionError"):
            submit(step, event_bytes(night / "e1.fits"), offset=1)
    assert sink.outcomes == []


def test_dir_source_goes_past_a_poison_pill(tmp_path: Path) -> None:
    watch = tmp_path / "incoming"
    watch.mkdir()
    for name in ("a-poison.fits", "poison.fits", "z1.fits"):
        (watch / name).write_bytes(FITS)
    classifier = BuggyClassifier()
    step = chain_of(watch, classifier, WriteFiles(DirState(watch), Collect()), max_attempts=3)
    stop = threading.Event()
    thread = threading.Thread(target=DirSource(watch, 0.05, step, stop).run)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not (watch / "verdicts" / "z1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
    assert (watch / "verdicts" / "z1.json").exists()
    letter = DeadLetterRecord.model_validate_json((watch / "rejected" / "poison.fits.reason.json").read_text())
    assert letter.reason == "processing_error"
    assert [p.name for p in classifier.calls].count("poison.fits") == 3


def chain_of(root: Path, classifier: StandInClassifier, sink, max_attempts: int):  # noqa: ANN001, ANN201
    from skyqa.service.stream.steps import chain

    return chain(Fetcher(FetchConfig(allowed_roots=[root])), classifier, sink, max_attempts)


@pytest.mark.parametrize("value", ["2001234", 2001234, " 2001234 ", "MC.2026-01_a+b", "x" * 128])
def test_valid_ids(value: object) -> None:
    assert normalise_exposure_id(value) == str(value).strip()


@pytest.mark.parametrize("value", ["", " ", "..", ".", "../../etc/passwd", "/abs", "a/b", "a\\b", "a\0b", ".hidden",
                                   "-rf", "x" * 129, "a b", "a\nb", "é"])
def test_invalid_ids(value: str) -> None:
    with pytest.raises(InvalidId):
        normalise_exposure_id(value)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\0b", "x" * 256])
def test_safe_join_never_leaves_its_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidId):
        safe_join(tmp_path, name)


def test_safe_join_plain_names(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "a b.fits.reason.json") == tmp_path / "a b.fits.reason.json"


def test_dir_source_ledger_survives_hostile_file_names(tmp_path: Path) -> None:
    watch = tmp_path / "incoming"
    watch.mkdir()
    names = ["tab\there.fits", "new\nline.fits", "per%09cent.fits", "sep\u2028ara.fits"]
    for name in names:
        (watch / name).write_bytes(FITS)
    state = DirState(watch)
    for i, name in enumerate(names):
        state.record(name, f"e{i}")
    assert state.processed() == set(names)
    assert len(state.ledger.read_text().splitlines()) == len(names)
