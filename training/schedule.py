"""The `skyqa adapt` schedule: its defaults, import-light so that `skyqa` builds its arguments without the
training extras (TensorFlow, tqdm) installed."""

from __future__ import annotations

from dataclasses import dataclass

from skyqa.service.pipeline.desom2_input import DescriptorShare


@dataclass(frozen=True)
class Schedule:
    """Sized so that a 720-exposure archive adapts within an hour on 2 CPU cores (README, "Adapting to a new site")."""

    desom1_iterations: int = 1000
    desom1_batch: int = 64
    desom1_max_cutouts: int = 100_000
    desom2_iterations: int = 3000
    desom2_batch: int = 32
    descriptor_share: DescriptorShare = 0.25  # skyqa.service.pipeline.desom2_input: total or per group; 0: 625 bins
    exposures_per_cell: int = 20
    holdout: float = 0.25
    min_confidence: float = 0.6
    gallery_per_cell: int = 4
    workers: int = 2
    seed: int = 0
