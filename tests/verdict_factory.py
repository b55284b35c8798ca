"""Verdicts built directly (no pipeline run) for archive, search and API tests: the archive's input data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from skyqa.service.labels import Label
from skyqa.service.verdict import ExposureMetadata, ModelVersions, PhysicalMetrics, Verdict

NIGHT_START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 20:00 at CFHT (UTC-10) on 2026-11-22


def make_verdict(exposure_id: str, histovector: np.ndarray, label: Label = Label.GOOD, *, minute: int = 0,
                 cell: tuple[int, int] = (1, 2), distance: float = 0.5, fwhm: float = 0.8, elongation: float = 1.1,
                 band: str = "r", models: tuple[str, str] = ("1", "1")) -> Verdict:
    when = NIGHT_START + timedelta(minutes=minute)
    return Verdict(
        exposure_id=exposure_id, label=label, usable=label.usable, cell=cell, cell_index=cell[1] * 20 + cell[0],
        distance=distance, histovector=[int(v) for v in histovector],
        metrics=PhysicalMetrics(fwhm_arcsec=fwhm, elongation=elongation, background_adu=1000.0),
        detections=int(np.sum(histovector)), cutouts=100, ccds=36, dead_ccds=[], timings_s={"total": 1.0},
        models=ModelVersions(desom1=models[0], desom2=models[1]),
        metadata=ExposureMetadata(instrument="MegaPrime", filter=f"{band}.MP9602", exptime_s=60.0, airmass=1.2,
                                  ra_deg=150.0, dec_deg=2.0, date_obs=when, mjd_obs=61000.25, object="D2",
                                  night=(when - timedelta(hours=22)).date()),
    )


def random_histovectors(n: int, seed: int, clusters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(n, 625) counts drawn around `clusters` random node distributions, and each row's cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.dirichlet(np.full(625, 0.05), size=clusters)
    which = rng.integers(0, clusters, n)
    vectors = np.stack([rng.multinomial(int(rng.integers(2000, 8000)), centres[c]) for c in which])
    return vectors, which
