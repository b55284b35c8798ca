"""`skyqa curate`: propose the DESOM-2 label map from a labelled sample, keep and apply expert edits.

The vote stands in for the expert who inspects each cell: a cell gets its majority label when the
majority is pure enough, and stays unlabelled (a white cell) when its members are mixed.
Exposures that the background check makes BGP at serving time do not vote: their sources may look
perfectly good, and the label of a cell says what its sources look like.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from skyqa.service.calibration import MIN_INSTRUMENT_GOODS, Calibration, derive
from skyqa.service.curation import edits as curation_edits
from skyqa.service.pipeline.background_check import BackgroundCheckConfig, background_problems
from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.service.labels import CellLabel, Label, LabelMap
from skyqa.service.verdict import PhysicalMetrics


def read_cells(path: Path) -> dict[str, int]:
    """exposure_id -> DESOM-2 cell index, from the `cells.csv` that `skyqa train desom2` writes."""
    with open(path, newline="") as handle:
        return {row["exposure_id"]: int(row["cell"]) for row in csv.DictReader(handle)}


def write_cells(path: Path, cells: Mapping[str, int]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["exposure_id", "cell"])
        writer.writerows(sorted(cells.items()))


def background_flagged(metrics: Mapping[str, dict], calibration: Calibration,
                       overrides: BackgroundCheckConfig | None = None,
                       instruments: Mapping[str, str | None] | None = None) -> set[str]:
    """Exposure ids (from a dataset manifest's metrics) that the serving-side background check makes BGP, each judged
    with its instrument's limits (`instruments`: exposure id -> INSTRUME; `Calibration.for_instrument`)."""
    instruments = instruments or {}
    checks = {name: calibration.for_instrument(name).background_check(overrides)
              for name in {*instruments.values(), None}}
    return {eid for eid, m in metrics.items()
            if background_problems(PhysicalMetrics(**m), checks[instruments.get(eid)])}


def calibrate(metrics: Mapping[str, dict], truth: Mapping[str, Label], fallback: BackgroundCheckConfig,
              source: str, descriptors: Mapping[str, Mapping[str, float | None]] | None = None,
              instruments: Mapping[str, str | None] | None = None) -> Calibration:
    """The version's check limits from the archive: its labelled Good exposures must pass. The shape limits and the
    background range come from their `descriptors` (a dataset manifest's: feature -> value); without them those
    stay unchecked. In an archive of several instruments (`instruments`: exposure id -> INSTRUME), one with at least
    `MIN_INSTRUMENT_GOODS` labelled Good exposures also gets limits of its own, from those alone."""
    good_ids = [eid for eid in metrics if truth.get(eid) is Label.GOOD]
    instruments = instruments or {}
    by_instrument: dict[str, list[str]] = {}
    for eid in good_ids:
        if (name := instruments.get(eid)) is not None:
            by_instrument.setdefault(name, []).append(eid)
    own = {name: _derived(ids, metrics, fallback, f"{source}, instrument {name}", descriptors)
           for name, ids in sorted(by_instrument.items()) if MIN_INSTRUMENT_GOODS <= len(ids) < len(good_ids)}
    return _derived(good_ids, metrics, fallback, source, descriptors).model_copy(update={"instruments": own})


def _derived(good_ids: list[str], metrics: Mapping[str, dict], fallback: BackgroundCheckConfig, source: str,
             descriptors: Mapping[str, Mapping[str, float | None]] | None) -> Calibration:
    good = [PhysicalMetrics(**metrics[eid]) for eid in good_ids]
    described = {f: [descriptors[e].get(f) for e in good_ids if e in descriptors] for f in FEATURES} \
        if descriptors is not None else None
    return derive([m.background_structure for m in good], [m.exptime_s for m in good], fallback, source,
                  descriptors_good=described)


def propose(
    cells: Mapping[str, int],
    truth: Mapping[str, Label],
    grid: tuple[int, int],
    purity: float = 0.6,
    min_members: int = 1,
    previous: LabelMap | None = None,
) -> LabelMap:
    """Majority vote per cell; expert entries of `previous` always win over the vote."""
    votes: dict[int, Counter[Label]] = {}
    for exposure_id, cell in cells.items():
        if exposure_id in truth:
            votes.setdefault(cell, Counter())[truth[exposure_id]] += 1
    proposed: dict[int, CellLabel] = {}
    for cell, counter in votes.items():
        label, count = counter.most_common(1)[0]
        members = sum(counter.values())
        share = count / members
        if members >= min_members and share >= purity:
            proposed[cell] = CellLabel(label=label, source="vote", purity=round(share, 3), members=members)
    if previous is not None:
        proposed.update({c: e for c, e in previous.cells.items() if e.source == "expert"})
    return LabelMap(grid=grid, cells=dict(sorted(proposed.items())))


def fill_empty(label_map: LabelMap, occupied: set[int], min_agreeing: int = 2) -> LabelMap:
    """Label cells no training exposure landed in from their grid neighbours, when those agree.

    With far fewer exposures than the paper's 50k, many DESOM-2 cells stay empty, yet new exposures
    land there: the map is topology-preserving, so an empty cell between cells that all carry one label
    is that label's territory. Cells with members (labelled or mixed) are never touched.
    """
    nx, ny = label_map.grid
    cells = dict(label_map.cells)
    for cell in range(nx * ny):
        if cell in occupied or cell in cells:
            continue
        x, y = cell % nx, cell // nx
        around = [(x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        labels = {label_map.label_of(j * nx + i) for i, j in around if 0 <= i < nx and 0 <= j < ny
                  and j * nx + i in label_map.cells}
        count = sum(1 for i, j in around if 0 <= i < nx and 0 <= j < ny and j * nx + i in label_map.cells)
        if len(labels) == 1 and count >= min_agreeing:
            cells[cell] = CellLabel(label=labels.pop(), source="neighbours", members=0)
    return label_map.model_copy(update={"cells": dict(sorted(cells.items()))})


def apply_edits(label_map: LabelMap, edits: Path) -> LabelMap:
    """Expert edits from a CSV (`cell,label[,note]`; label `Unlabelled` clears a cell) become 'expert' entries;
    the same rule as edits published from the archive (skyqa.service.curation.edits)."""
    return curation_edits.apply_edits(label_map, curation_edits.read_edits_csv(edits))
