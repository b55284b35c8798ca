"""From an exposure file to a Verdict: preprocessing, DESOM-1, histo-vector, DESOM-2, curated label."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from skyqa.service.calibration import version_calibration
from skyqa.service.config import Settings
from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.service.pipeline.desom2_input import HISTO_BINS, Desom2Input
from skyqa.service.pipeline.histovector import histo_vector
from skyqa.service.inference.base import SomModel
from skyqa.service.inference.factory import open_models
from skyqa.service.labels import Label, LabelMap
from skyqa.service.modelrepo import resolve_version
from skyqa.service.pipeline.metadata import read_metadata
from skyqa.service.pipeline.preprocess import PendingMosaic, PreparedExposure, prepare_exposure
from skyqa.service.previews.image import render
from skyqa.service.previews.store import PreviewStore
from skyqa.service.verdict import ModelVersions, Verdict

DESOM1_NODES = HISTO_BINS  # the histo-vector has one bin per DESOM-1 node
log = structlog.get_logger("skyqa.classify")


@dataclass(frozen=True)
class Curation:
    """What ships beside a DESOM-2 version: its input (scaler, descriptor or not) and the curated label map."""

    input: Desom2Input
    labels: LabelMap

    @classmethod
    def load(cls, version_dir: Path) -> Curation:
        return cls(Desom2Input.load(version_dir / "scaler.json"), LabelMap.load(version_dir / "labels.json"))


class Classifier:
    """Runs the whole chain for one exposure at a time; holds the models (local or Triton) open."""

    def __init__(self, settings: Settings, models: tuple[SomModel, SomModel] | None = None) -> None:
        self.settings = settings
        self.desom1, self.desom2 = models or open_models(settings)
        _, desom2_dir = resolve_version(settings.models.repository, settings.models.desom2, self.desom2.version)
        self.curation = Curation.load(desom2_dir)
        self.calibration, calibrated = version_calibration(desom2_dir, settings.background_check)
        if not calibrated:
            log.warning("model version without calibration: background check from the settings",
                        desom2_version=self.desom2.version)
        elif outdated := self.calibration.outdated_shapes:
            log.warning("shape limits derived before these features were measured differently: served unchecked; "
                        "re-derive them with `skyqa curate --data`", desom2_version=self.desom2.version,
                        features=outdated, measurement_version=self.calibration.measurement_version)
        # INSTRUME -> its checks; None: the whole archive's, for every instrument without limits of its own
        self.checks = {name: self.calibration.for_instrument(name).checks(settings.background_check)
                       for name in (None, *self.calibration.instruments)}
        lineage = desom2_dir / "lineage.json"
        trained_on = json.loads(lineage.read_text())["desom1_version"] if lineage.exists() else self.desom1.version
        if trained_on != self.desom1.version:
            raise ValueError(
                f"desom2 v{self.desom2.version} was trained on desom1 v{trained_on}, not v{self.desom1.version}: "
                "set models.desom1_version to match"
            )
        self.versions = ModelVersions(desom1=self.desom1.version, desom2=self.desom2.version)
        self.previews = PreviewStore(settings.previews.location) if settings.previews.enabled else None
        # The preview's last reads (in the workers), its rendering and writing come after the verdict is out, while
        # the next exposure's CCDs are processed.
        self._renderer = ThreadPoolExecutor(1, thread_name_prefix="skyqa-preview") if self.previews else None
        self._rendering: Future[float] | None = None
        self._upcoming: Path | None = None

    def expect(self, path: Path) -> None:
        """`path` will most likely be classified right after the next call: its CCDs are started during that call
        (`prepare_exposure(then=)`), so the workers never wait for the verdict's last steps."""
        self._upcoming = path

    def classify(self, path: Path, exposure_id: str | None = None) -> Verdict:
        """Raises skyqa.service.pipeline.exposure.ExposureError (with a machine-readable reason) for unusable files.

        DESOM-1 runs on each chunk of CCDs' cutouts as soon as the workers hand it over, while they prepare the
        next chunks (timings: `desom1` is inside `prepare_wall`); the histo-vector only counts best-matching units,
        so the order does not matter. The focal-plane preview is finished (its rows outside the bands read by the
        workers behind the CCDs), rendered and written in a thread after the verdict (`finish_preview`), while the
        next exposure is processed."""
        start = time.perf_counter()
        preview_side = self.settings.previews.max_side if self.previews else None
        bmus: list[np.ndarray] = []
        desom1_s = 0.0

        def desom1(cutouts: np.ndarray) -> None:
            nonlocal desom1_s
            t = time.perf_counter()
            bmus.append(self.desom1.predict(cutouts)[0])
            desom1_s += time.perf_counter() - t

        upcoming, self._upcoming = self._upcoming, None
        prepared = prepare_exposure(Path(path), self.settings, preview_side, on_cutouts=desom1, then=upcoming)
        self.finish_preview()
        timings = dict(prepared.timings)
        if prepared.mosaic is not None:  # asked for only when previews are enabled, hence a renderer
            self._rendering = self._renderer.submit(self._write_preview, exposure_id or prepared.exposure_id,
                                                    prepared.mosaic)
        if len(prepared.cutouts) == 0:
            return self._verdict(prepared, exposure_id, np.zeros(DESOM1_NODES, np.int64), None, timings, start)
        timings["desom1"] = desom1_s

        t = time.perf_counter()
        vector = histo_vector(np.concatenate(bmus), prepared.weight, n_nodes=DESOM1_NODES)
        features = self.curation.input.transform(vector[None, :], prepared.descriptor[None, :])
        timings["histovector"] = time.perf_counter() - t

        t = time.perf_counter()
        cells, distances = self.desom2.predict(features)
        timings["desom2"] = time.perf_counter() - t
        return self._verdict(prepared, exposure_id, vector, (int(cells[0]), float(distances[0])), timings, start)

    def finish_preview(self) -> float | None:
        """Wait for the last exposure's preview to be written; the seconds its rendering and writing took (None:
        none was pending). `classify` and `close` call it, so at most one preview is ever pending."""
        rendering, self._rendering = self._rendering, None
        return None if rendering is None else rendering.result()

    def _write_preview(self, exposure_id: str, mosaic: PendingMosaic) -> float:
        """Finish reading, render and store the focal-plane preview; a preview that cannot be read or written never
        costs a verdict."""
        t = time.perf_counter()
        cfg = self.settings.previews
        try:
            self.previews.put(exposure_id, render(mosaic.result(), cfg.format, cfg.quality, cfg.max_bytes), cfg.format)
        except Exception as err:  # noqa: BLE001 - a corrupt tile no band held, an unwritable location: log it
            log.warning("preview_not_written", exposure_id=exposure_id, error=f"{type(err).__name__}: {err}")
        return time.perf_counter() - t

    def _verdict(
        self,
        prepared: PreparedExposure,
        exposure_id: str | None,
        vector: np.ndarray,
        mapped: tuple[int, float] | None,
        timings: dict[str, float],
        start: float,
    ) -> Verdict:
        if mapped is None:
            label, usable, cell, index, distance = Label.UNLABELLED, False, None, None, None
            notes = ["no sources detected: nothing for DESOM to classify; not usable"]
        else:
            index, distance = mapped
            label = self.curation.labels.label_of(index)
            nx = self.curation.labels.grid[0]
            usable, cell, notes = label.usable, (index % nx, index // nx), []
        metadata = read_metadata(prepared.primary_header, self.settings.site.utc_offset_hours)
        checks = self.checks.get(metadata.instrument, self.checks[None])
        label, checked = checks.apply(label, prepared.metrics, dict(zip(FEATURES, prepared.descriptor.tolist())))
        if checked:
            usable = label.usable
            notes += checked
        timings["total"] = time.perf_counter() - start
        return Verdict(
            exposure_id=exposure_id or prepared.exposure_id,
            label=label,
            usable=usable,
            cell=cell,
            cell_index=index,
            distance=distance,
            histovector=[int(v) for v in vector],
            metrics=prepared.metrics,
            detections=int(round(prepared.weight)),
            cutouts=len(prepared.cutouts),
            ccds=prepared.n_ccds,
            dead_ccds=prepared.dead_ccds,
            skipped_ccds=prepared.skipped_ccds,
            metadata=metadata,
            timings_s={k: round(v, 4) for k, v in timings.items()},
            models=self.versions,
            notes=notes,
        )

    def ready(self) -> bool:
        return all(getattr(m, "is_ready", lambda: True)() for m in (self.desom1, self.desom2))

    def close(self) -> None:
        self.finish_preview()
        if self._renderer is not None:
            self._renderer.shutdown()
        self.desom1.close()
        self.desom2.close()
