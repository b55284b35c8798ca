"""Model reload without a restart: the daemon takes a newly published model version between two exposures.

Interfaces:
- `ReloadingClassifier(settings, open_classifier=Classifier)`: a `VerdictSource` for `chain`; before an exposure,
  at most every `serve.model_reload_interval_s` seconds (None: only on request) or at once after `request()`
  (wired to SIGHUP by `skyqa serve`), it resolves `models.*_version` again; when the versions differ from the loaded
  ones it opens a new classifier and swaps it in (the chain runs one exposure at a time in one thread, so the
  exposure in flight finishes on the old models and the next one starts on the new). A version that fails to load
  (half-published lineage, broken file) is logged and counted; the old models keep serving and it is retried.
- Log events `models_reloaded` / `model_reload_failed`; counter `skyqa_model_reloads_total{outcome}`;
  `skyqa_model_info` follows the loaded versions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from skyqa.service.config import Settings
from skyqa.service.modelrepo import resolve_version
from skyqa.service.stream.metrics import MODEL_INFO, MODEL_RELOADS
from skyqa.service.verdict import ModelVersions, Verdict

log = structlog.get_logger("skyqa.stream")


class ReloadingClassifier:
    def __init__(self, settings: Settings, open_classifier: Callable, clock: Callable[[], float] = time.monotonic):
        self.settings, self._open, self._clock = settings, open_classifier, clock
        self._current = open_classifier(settings)
        self._checked_at = clock()
        self._requested = threading.Event()
        MODEL_INFO.labels(**self._info(self._current.versions)).set(1)

    @property
    def versions(self) -> ModelVersions:
        return self._current.versions

    def request(self) -> None:
        """Check the repository before the next exposure (signal-safe: only sets a flag)."""
        self._requested.set()

    def expect(self, path: Path) -> None:
        self._current.expect(path)

    def classify(self, path: Path, exposure_id: str | None = None) -> Verdict:
        self._maybe_reload()
        return self._current.classify(path, exposure_id)

    def finish_preview(self) -> float | None:
        return self._current.finish_preview()

    def ready(self) -> bool:
        return self._current.ready()

    def close(self) -> None:
        self._current.close()

    def _due(self) -> bool:
        interval = self.settings.serve.model_reload_interval_s
        return self._requested.is_set() or (interval is not None and self._clock() - self._checked_at >= interval)

    def _maybe_reload(self) -> None:
        if not self._due():
            return
        self._requested.clear()
        self._checked_at = self._clock()
        m = self.settings.models
        try:
            wanted = ModelVersions(desom1=resolve_version(m.repository, m.desom1, m.desom1_version)[0],
                                   desom2=resolve_version(m.repository, m.desom2, m.desom2_version)[0])
            if wanted == self._current.versions:
                return
            fresh = self._open(self.settings)
        except Exception as err:  # noqa: BLE001 - whatever a bad version throws, the loaded models keep serving
            MODEL_RELOADS.labels(outcome="failed").inc()
            log.error("model_reload_failed", error=f"{type(err).__name__}: {err}",
                      serving=self._current.versions.model_dump())
            return
        old, self._current = self._current, fresh
        old.close()
        MODEL_INFO.remove(*self._info(old.versions).values())
        MODEL_INFO.labels(**self._info(fresh.versions)).set(1)
        MODEL_RELOADS.labels(outcome="reloaded").inc()
        log.info("models_reloaded", previous=old.versions.model_dump(), models=fresh.versions.model_dump())

    @staticmethod
    def _info(versions: ModelVersions) -> dict[str, str]:
        return {"desom1_version": versions.desom1, "desom2_version": versions.desom2}
