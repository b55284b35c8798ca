"""The directory source: a watched directory instead of Kafka, for a site without a broker or for a laptop.

New `*.fits*` files (complete: same size on two consecutive polls) become events and run through the same
chain as Kafka events. Verdicts go to `<watch_dir>/verdicts/<exposure_id>.json`, bad files are moved to
`<watch_dir>/rejected/` beside a `<name>.reason.json` dead letter. The output directories are the state:
`verdicts/processed.tsv` lists the files already classified (written after their verdict, so a crash in
between only re-classifies one file, to an identical verdict), rejected files have left the directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import structlog
from astropy.io import fits

from skyqa.service.pipeline.exposure import ExposureError, exposure_id
from skyqa.service.pipeline.ids import safe_join
from skyqa.service.stream.backoff import Backoff
from skyqa.service.stream.errors import Transient
from skyqa.service.stream.events import ExposureEvent
from skyqa.service.stream.metrics import DUPLICATE_VERDICTS, ERRORS, EVENTS_CONSUMED
from skyqa.service.stream.outcome import Message, Origin, Outcome
from skyqa.service.stream.steps import Step

PATTERN = "*.fits*"
# A file name is free text: the few characters that would break a ledger line (or its escaping) are %-encoded.
_LEDGER_ESCAPES = re.compile(r"[%\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
INSTRUMENT = "watched-directory"
log = structlog.get_logger("skyqa.stream")


class DirState:
    """The outbox directories and the ledger of processed file names."""

    def __init__(self, watch_dir: Path) -> None:
        self.watch_dir = watch_dir
        self.verdicts = watch_dir / "verdicts"
        self.rejected = watch_dir / "rejected"
        self.ledger = self.verdicts / "processed.tsv"
        self.verdicts.mkdir(parents=True, exist_ok=True)
        self.rejected.mkdir(parents=True, exist_ok=True)

    def processed(self) -> set[str]:
        if not self.ledger.exists():
            return set()
        return {unquote(line.split("\t", 1)[0]) for line in self.ledger.read_text().splitlines() if line}

    def record(self, name: str, exposure: str) -> None:
        with self.ledger.open("a") as f:
            f.write(f"{_LEDGER_ESCAPES.sub(lambda m: quote(m.group()), name)}\t{exposure}\n")
            f.flush()
            os.fsync(f.fileno())


class WriteFiles:
    """The directory sink (its 'commit'): verdict file + ledger line, or dead letter + move to rejected/."""

    def __init__(self, state: DirState, next_step: Step[Outcome]) -> None:
        self.state, self.next_step = state, next_step

    def submit(self, message: Message[Outcome]) -> None:
        outcome = message.payload
        assert outcome.event is not None  # events built by DirSource always decode
        source = Path(unquote(urlsplit(outcome.event.uri).path))
        if outcome.verdict is not None:  # ids and names were validated upstream; safe_join is the last guard
            target = safe_join(self.state.verdicts, f"{outcome.verdict.exposure_id}.json")
            if target.exists():
                DUPLICATE_VERDICTS.inc()
            _atomic_write(target, outcome.value)
            self.state.record(source.name, outcome.verdict.exposure_id)
        else:
            _atomic_write(safe_join(self.state.rejected, f"{source.name}.reason.json"), outcome.value)
            source.replace(safe_join(self.state.rejected, source.name))
        self.next_step.submit(message)


class DirSource:
    """Polls `watch_dir` every `interval_s` and submits each new complete file once; before each, `upcoming` is told
    the file after it (the classifier starts that one while it finishes the current one)."""

    def __init__(self, watch_dir: Path, interval_s: float, chain: Step[bytes], stop: threading.Event,
                 heartbeat=lambda: None, upcoming: Callable[[Path], None] = lambda path: None) -> None:  # noqa: ANN001
        self.state = DirState(watch_dir)
        self.watch_dir, self.interval_s, self.chain, self.stop, self.heartbeat = watch_dir, interval_s, chain, stop, heartbeat
        self.upcoming = upcoming
        self.backoff = Backoff()
        self._sizes: dict[str, int] = {}
        self._offset = 0
        self._retrying: str | None = None

    def run(self) -> int:
        done = self.state.processed()
        while not self.stop.is_set():
            self.heartbeat()
            sizes = _sizes(self.watch_dir)
            ready = sorted(n for n, size in sizes.items() if n not in done and self._sizes.get(n) == size)
            self._sizes = sizes
            for i, name in enumerate(ready):
                if self.stop.is_set():
                    break
                if i + 1 < len(ready):
                    self.upcoming(self.watch_dir / ready[i + 1])
                if self._process(self.watch_dir / name):
                    done.add(name)
                else:
                    self.backoff.wait(self.stop)
                    break
            self.stop.wait(self.interval_s)
        return 0

    def _process(self, path: Path) -> bool:
        """True once the file has a verdict or was rejected; False when it must be retried (Transient)."""
        if self._retrying != path.name:  # a retry keeps its position: Classify counts failures per position
            EVENTS_CONSUMED.inc()
            self._offset += 1
        event = ExposureEvent(schema_version=1, exposure_id=_exposure_id(path), uri=path.resolve().as_uri(),
                              instrument=INSTRUMENT, obs_time=datetime.fromtimestamp(path.stat().st_mtime, UTC))
        origin = Origin(f"dir:{self.watch_dir}", 0, self._offset, event.to_bytes(), time.time())
        try:
            self.chain.submit(Message(origin.raw, origin))
        except Transient as err:
            ERRORS.labels(stage=err.stage, reason="transient").inc()
            log.warning("event_retry", file=path.name, error=str(err), attempt=self.backoff.failures + 1)
            self._retrying = path.name
            return False
        self._retrying = None
        self.backoff.reset()
        return True


def _sizes(watch_dir: Path) -> dict[str, int]:
    sizes = {}
    for path in watch_dir.glob(PATTERN):
        try:
            if path.is_file():
                sizes[path.name] = path.stat().st_size
        except OSError:  # removed between listing and stat
            continue
    return sizes


def _exposure_id(path: Path) -> str:
    """The project convention (EXPNUM, else the file name); a file that is not FITS gets its name.

    When that is no valid id (EXPNUM = '../../etc/passwd', a file name with blanks) the event gets a stand-in
    derived from the file name, so it can be decoded and routed: classifying the file then rejects it as
    invalid_exposure_id, and the file moves to rejected/ like any other bad file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged header is the chain's business, not this lookup's
            header = fits.getheader(path, 0)
    except Exception:  # not FITS / truncated: the chain rejects it with the precise reason
        header = fits.Header()
    try:
        return exposure_id(path, header)
    except ExposureError:
        return f"invalid-{hashlib.sha256(path.name.encode(errors='surrogateescape')).hexdigest()[:16]}"


def _atomic_write(target: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, target)
