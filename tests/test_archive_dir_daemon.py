"""The embedded daemon (`serve --source dir`) writes every verdict and dead letter to the archive itself, with
the exposure metadata read from the real header of a simulated exposure."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from astropy.io import fits
from sqlalchemy import select

from skyqa.cli import main
from skyqa.service.archive.models import DeadLetterRow, Exposure, VerdictRow
from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.stream.serve import serve
from tests.kafka_fixture import free_port

pytestmark = pytest.mark.slow


def test_dir_daemon_archives_verdicts_and_dead_letters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skyqa.simulator.night import simulate_night

    night, watch = tmp_path / "night", tmp_path / "incoming"
    simulate_night(night, 1, seed=21, size="tiny", classes={"Good": 1.0}, progress=False)
    exposure = next(night.glob("*.fits*"))
    header = fits.getheader(exposure, 0)
    watch.mkdir()
    (watch / "broken.fits").write_bytes(b"SIMPLE  = garbage")
    exposure.replace(watch / exposure.name)
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    settings = Settings(archive={"url": url}, workers=1,
                        serve={"source": "dir", "watch_dir": watch, "watch_interval_s": 0.2,
                               "http_host": "127.0.0.1", "http_port": free_port()})
    stop = threading.Event()
    daemon = threading.Thread(target=serve, args=(settings, stop))
    daemon.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (
                (watch / "verdicts" / f"{header['EXPNUM']}.json").exists()
                and (watch / "rejected" / "broken.fits.reason.json").exists()):
            time.sleep(0.2)
    finally:
        stop.set()
        daemon.join(120)
    archive = Archive(url)
    with archive.engine.connect() as c:
        verdict = c.execute(select(VerdictRow.exposure_id, VerdictRow.source, VerdictRow.label)).one()
        meta = c.execute(select(Exposure.filter, Exposure.airmass, Exposure.object, Exposure.night,
                                Exposure.latest_verdict_id)).one()
        letter = c.execute(select(DeadLetterRow.reason, DeadLetterRow.origin)).one()
    assert verdict.exposure_id == str(header["EXPNUM"]) and verdict.source == "dir"
    assert (meta.filter, meta.airmass, meta.object) == (header["FILTER"], header["AIRMASS"], header["OBJECT"])
    assert meta.night is not None and meta.latest_verdict_id is not None
    assert letter.reason in ("not_fits", "truncated") and "broken.fits" in letter.origin

    # The same file given to `search similar` is classified on the fly: its nearest archived exposure is itself.
    capsys.readouterr()
    assert main(["search", "--url", url, "similar", str(watch / exposure.name), "--k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert hit["exposure_id"] == str(header["EXPNUM"]) and hit["score"] == pytest.approx(0.0, abs=1e-6)


def test_dir_daemon_refuses_a_watch_dir_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verdicts/, rejected/ and the ledger live in the watched directory: an unwritable one (here below a plain
    file, as root ignores permission bits) is a configuration error with exit status 78, not a traceback."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = Settings(archive={"url": f"sqlite:///{tmp_path / 'archive.db'}"}, workers=1,
                        serve={"source": "dir", "watch_dir": blocker / "incoming",
                               "http_host": "127.0.0.1", "http_port": free_port()})
    assert serve(settings, threading.Event()) == 78
    captured = capsys.readouterr()
    assert "watch_dir_not_writable" in captured.out + captured.err
    assert blocker.read_text() == ""
