"""Model reload without a restart: a curated version published while the real directory daemon runs is used
for its next exposure, with the new version in the verdict and the new label (and the daemon writes previews)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from skyqa import shipped_models
from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.curation.edits import record_edit
from skyqa.service.curation.publish import publish_edits
from skyqa.service.labels import Label
from skyqa.service.modelrepo import versions
from skyqa.service.pipeline.classify import Classifier
from skyqa.service.previews.store import PreviewStore
from skyqa.service.stream.reload import ReloadingClassifier
from skyqa.service.stream.serve import serve
from tests.fits_factory import write_exposure
from tests.kafka_fixture import free_port

pytestmark = pytest.mark.slow


def _latest(repo: Path) -> int:
    """The shipped DESOM-2 version served by default (the highest numbered)."""
    return versions(repo, "desom2")[-1]


def _reloads(outcome: str) -> float:
    return REGISTRY.get_sample_value("skyqa_model_reloads_total", {"outcome": outcome}) or 0.0


def _wait_for(path: Path, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError(f"no {path} within {timeout_s} s")


def test_the_daemon_serves_a_version_published_while_it_runs(tmp_path: Path) -> None:
    repo, watch = tmp_path / "models", tmp_path / "incoming"
    shutil.copytree(shipped_models(), repo)
    latest = _latest(repo)
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    settings = Settings(archive={"url": url}, workers=1, models={"repository": repo},
                        previews={"location": tmp_path / "previews"},
                        serve={"source": "dir", "watch_dir": watch, "watch_interval_s": 0.2,
                               "model_reload_interval_s": 0, "http_host": "127.0.0.1", "http_port": free_port()})
    watch.mkdir()
    stop = threading.Event()
    daemon = threading.Thread(target=serve, args=(settings, stop))
    reloaded_before = _reloads("reloaded")
    daemon.start()
    try:
        write_exposure(watch / "a.fits.fz", n_ccds=2, shape=(300, 200), expnum=101, seed=1)
        first = _wait_for(watch / "verdicts" / "101.json")
        cell = first["cell_index"]
        new_label = Label.BT if first["label"] != Label.BT.value else Label.BADFOCUS
        archive = Archive(url)
        record_edit(archive, repo, "desom2", cell=cell, label=new_label, note="seen in the gallery", user="ana")
        published = publish_edits(archive, repo, "desom2", user="ana")
        archive.close()

        write_exposure(watch / "b.fits.fz", n_ccds=2, shape=(300, 200), expnum=102, seed=1)  # same pixels
        second = _wait_for(watch / "verdicts" / "102.json")
    finally:
        stop.set()
        daemon.join(120)
    assert first["models"]["desom2"] == str(latest) and published.version == str(latest + 1)
    assert second["models"]["desom2"] == str(latest + 1) and second["cell_index"] == cell
    assert second["label"] == new_label.value
    assert _reloads("reloaded") == reloaded_before + 1
    store = PreviewStore(tmp_path / "previews")  # the daemon writes each exposure's focal-plane preview
    assert store.get("101") is not None and store.get("102") is not None


def test_a_broken_version_keeps_the_old_models_and_sighup_asks_for_a_check(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    shutil.copytree(shipped_models(), repo)
    settings = Settings(workers=1, models={"repository": repo}, serve={"model_reload_interval_s": None})
    exposure = write_exposure(tmp_path / "e.fits.fz", n_ccds=2, shape=(300, 200), expnum=7, seed=2)
    classifier = ReloadingClassifier(settings, Classifier)
    latest = _latest(repo)
    broken = repo / "desom2" / str(latest + 1)
    shutil.copytree(repo / "desom2" / str(latest), broken)
    lineage = (broken / "lineage.json").read_text()
    (broken / "lineage.json").write_text(json.dumps({"desom1_version": "9"}))  # trained on a DESOM-1 not there
    failed_before = _reloads("failed")

    assert classifier.classify(exposure).models.desom2 == str(latest)  # no interval: nothing looked for
    previous = signal.signal(signal.SIGHUP, lambda _s, _f: classifier.request())
    try:
        os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert classifier.classify(exposure).models.desom2 == str(latest)  # refused: the old models keep serving
    assert _reloads("failed") == failed_before + 1

    (broken / "lineage.json").write_text(lineage)
    classifier.request()
    assert classifier.classify(exposure).models.desom2 == str(latest + 1)
    classifier.close()
