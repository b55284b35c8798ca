"""Fuzzing with Hypothesis: random FITS headers and event payloads.

The reader returns or raises ExposureError, the event decoder returns or raises EventError, and the daemon's
step chain turns any event (pointing at any file) into exactly one outcome (a verdict or a dead letter)
without raising: never an unforeseen exception, so never a processing_error retry either.

`make test` runs a bounded, derandomised number of examples (deterministic); a longer run:
    SKYQA_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_fuzz.py
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skyqa.service.config import FetchConfig, Settings
from skyqa.service.pipeline.budgets import Budgets
from skyqa.service.pipeline.exposure import ExposureError, describe_exposure, exposure_id, read_ccd
from skyqa.service.pipeline.preprocess import prepare_exposure
from skyqa.service.stream.events import EventError, decode_event
from skyqa.service.stream.fetch import Fetcher
from skyqa.service.stream.outcome import Message, Origin
from skyqa.service.stream.steps import chain

EXAMPLES = int(os.environ.get("SKYQA_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BUDGETS = Budgets(max_ccd_pixels=300_000, max_exposure_pixels=1_000_000, max_hdus=20)
CARD, BLOCK = 80, 2880
_names = itertools.count()

# Values of every FITS type, and of the wrong one: ints of any size, floats with NaN/inf, strings with
# quotes, slashes, '..' and control characters, logicals.
values = st.one_of(
    st.integers(-(2**40), 2**40), st.sampled_from([0, 1, 2, 3, -1, 8, 16, 32, -32, -64, 200000]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(st.characters(min_codepoint=0, max_codepoint=126), max_size=90),
    st.sampled_from(["../../etc/passwd", "/", "..", "abc", "T", "IMAGE", "BINTABLE", "RICE_1", "[1:10,1:10]"]),
)
keys = st.sampled_from(["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "XTENSION", "PCOUNT",
                        "GCOUNT", "EXTNAME", "EXPNUM", "EXPTIME", "SATURATE", "PIXSCAL", "CD1_1", "CD2_2", "CDELT1",
                        "DATASEC", "BZERO", "BSCALE", "ZIMAGE", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZBITPIX", "TFIELDS"])


def _value(value: object) -> str:
    if isinstance(value, bool):
        return ("T" if value else "F").rjust(20)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value).rjust(20)


def _header(cards: list[tuple[str, object]]) -> bytes:
    raw = b"".join(f"{k:<8}= {_value(v)}".ljust(CARD)[:CARD].encode("latin-1") for k, v in cards)
    raw += b"END".ljust(CARD)
    return raw + b" " * (-len(raw) % BLOCK)


@st.composite
def hdu(draw: st.DrawFn, primary: bool) -> bytes:
    """A mostly valid image HDU (so the fuzzer gets past the first card), then mutated: cards replaced by
    values of any type, extra cards, and data of the right size, too short or too long."""
    bitpix = draw(st.sampled_from([8, 16, 32, -32, -64]))
    ny, nx = (draw(st.integers(0, 120) | st.just(64)) for _ in range(2))
    cards: list[tuple[str, object]] = [("SIMPLE", True) if primary else ("XTENSION", "IMAGE"), ("BITPIX", bitpix),
                                       ("NAXIS", 2), ("NAXIS1", nx), ("NAXIS2", ny)]
    if not primary:
        cards += [("PCOUNT", 0), ("GCOUNT", 1)]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):  # mutations of the structural cards
        cards[draw(st.integers(0, len(cards) - 1))] = (draw(keys), draw(values))
    cards += draw(st.lists(st.tuples(keys, values), max_size=6))
    size = nx * ny * abs(bitpix) // 8
    size = draw(st.sampled_from([size, size // 2, size + 100, 0]))
    pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(1000, 30, size // 4 + 1).astype(">f4")
    data = pixels.tobytes()[:size]
    return _header(cards) + data + b"\0" * (-len(data) % BLOCK)


fits_files = st.builds(lambda first, rest: first + b"".join(rest), hdu(primary=True), st.lists(hdu(primary=False), max_size=3))


def write(directory: Path, raw: bytes, suffix: str = ".fits") -> Path:
    path = directory / f"fuzz{next(_names):06d}{suffix}"
    path.write_bytes(raw)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def small_settings() -> Settings:
    return Settings(workers=1, limits=BUDGETS)


@FUZZ
@given(raw=fits_files)
def test_reader_returns_or_raises_exposure_error(workdir: Path, small_settings: Settings, raw: bytes) -> None:
    path = write(workdir, raw)
    try:
        primary, ccds = describe_exposure(path, BUDGETS)
        exposure_id(path, primary)
        for info in ccds:
            assert read_ccd(path, info).shape == info.shape
        prepared = prepare_exposure(path, small_settings)
        assert prepared.n_ccds == len(ccds)
        event("prepared")
    except ExposureError as err:
        event(err.reason)
        assert err.reason in {"not_fits", "truncated", "no_ccd_hdus", "no_usable_ccd", "unreadable",
                              "invalid_exposure_id", "too_many_pixels", "too_many_hdus"}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=10)
event_fields = st.fixed_dictionaries(
    {}, optional={"schema_version": st.sampled_from([1, 2, "1", None]),
                  "exposure_id": st.text(max_size=300) | st.sampled_from(["../../etc/passwd", "e1", "a\0b"]),
                  "uri": st.text(max_size=60) | st.sampled_from(["file:///etc/passwd", "http://x/y", "s3://b/k"]),
                  "instrument": st.text(max_size=20), "obs_time": st.text(max_size=30) | st.just("2026-01-01T00:00:00Z"),
                  "checksum": st.none() | st.text(max_size=80), "extra": json_values})
VALID_EVENT = {"schema_version": 1, "exposure_id": "e1", "uri": "file:///data/e1.fits", "instrument": "MegaCam",
               "obs_time": "2026-01-01T00:00:00+00:00"}
payloads = (st.binary(max_size=300) | event_fields.map(lambda d: json.dumps(d).encode())
            | event_fields.map(lambda d: json.dumps({**VALID_EVENT, **d}).encode()))


@FUZZ
@given(raw=payloads)
def test_event_decoder_returns_or_raises_event_error(raw: bytes) -> None:
    try:
        decoded = decode_event(raw)
    except EventError as err:
        event(err.reason)
        assert err.reason in {"malformed_json", "schema_violation", "invalid_exposure_id"}
    else:
        event("decoded")
        assert decoded.exposure_id and "/" not in decoded.exposure_id


class Collect:
    def __init__(self) -> None:
        self.outcomes: list = []

    def submit(self, message: Message) -> None:
        self.outcomes.append(message.payload)


@pytest.fixture(scope="module")
def classifier(small_settings: Settings):  # noqa: ANN201 - the real Classifier, shipped models, local inference
    from skyqa.service.pipeline.classify import Classifier

    c = Classifier(small_settings)
    yield c
    c.close()


@FUZZ
@given(raw=fits_files, fields=event_fields, gz=st.booleans())
def test_steps_turn_any_event_into_exactly_one_outcome(workdir: Path, classifier, raw: bytes,  # noqa: ANN001
                                                       fields: dict, gz: bool) -> None:
    import gzip

    path = write(workdir, gzip.compress(raw, mtime=0) if gz else raw)
    fields = {**VALID_EVENT, "uri": path.as_uri(), **{k: v for k, v in fields.items() if k != "uri"}}
    payload = json.dumps(fields).encode()
    sink = Collect()
    step = chain(Fetcher(FetchConfig(allowed_roots=[workdir], spool_dir=workdir / "spool")), classifier, sink,
                 max_attempts=1)  # an unforeseen exception would surface as a processing_error dead letter
    step.submit(Message(payload, Origin("events", 0, 0, payload, time.time())))
    [outcome] = sink.outcomes
    event(outcome.rejection.reason if outcome.rejection else "verdict")
    assert outcome.rejection is None or outcome.rejection.reason != "processing_error", outcome.rejection
