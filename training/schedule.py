"""The `skyqa adapt` schedule: its defaults, import-light so that `skyqa` builds its arguments without the
training extras (TensorFlow, tqdm) installed."""

from __future__ import annotations

from dataclasses import dataclass, field

from skyqa.service.pipeline.desom2_input import DescriptorShare, parse_share

# One share per feature group (README, "Stop 22"): the three shape features together carry as much variance as the
# bins, the twelve background features half as much; over one number (0.25) spread over all fifteen, +0.04
# accuracy on the unseen site's archive (4 DESOM-2 seeds) and on its test night after adapt (2 adapt seeds), +0.03
# on an archive of the project's own simulator (3 DESOM-2 seeds)
DESCRIPTOR_SHARE = "shape=1,background=0.5"


@dataclass(frozen=True)
class Schedule:
    """Sized so that a 720-exposure archive adapts within an hour on 2 CPU cores (README, "Adapting to a new site")."""

    desom1_iterations: int = 1000
    desom1_batch: int = 64
    desom1_max_cutouts: int = 100_000
    desom2_iterations: int = 3000
    desom2_batch: int = 32
    # skyqa.service.pipeline.desom2_input: a total or one per group; 0: the 625 bins alone
    descriptor_share: DescriptorShare = field(default_factory=lambda: parse_share(DESCRIPTOR_SHARE))
    # DESOM-2 maps trained from successive seeds (~20 s each for 720 exposures); the labels choose one by
    # cross-validation (skyqa.training.adapt.select_map), the first is shown until labels come. One by default: 8
    # gained +0.02-0.03 accuracy on the unseen site's archive but nothing on its test night (README, "Stop 23")
    desom2_restarts: int = 1
    exposures_per_cell: int = 20
    holdout: float = 0.25
    min_confidence: float = 0.6
    gallery_per_cell: int = 4
    workers: int = 2
    seed: int = 0
