"""What each page shows, read from the archive (search library) and the model repository; no HTTP here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
from markupsafe import Markup

from skyqa.service.api.nights import NightSummary, night_hits, summarise_night
from skyqa.service.config import Settings
from skyqa.service.labels import LABEL_COLOURS, Label, LabelMap
from skyqa.service.modelrepo import resolve_version
from skyqa.service.previews.store import Preview, PreviewStore
from skyqa.service.search.filters import Filters, Hit, Page
from skyqa.service.search.library import Search
from skyqa.service.web import charts
from skyqa.service.web.png import prototype_grid

TABLE_LIMIT = 500
SIMILAR_K = 8
GALLERY = 24
DENSITY_SAMPLES = 6


@dataclass
class NightView:
    night: date
    summary: NightSummary
    rows: list[Hit]
    timeline: Markup  # the SVG bars, empty before the night's first verdict
    trends: list[charts.Trend]
    stamp: str


def night_view(search: Search, night: date, labels: list[Label], band: str | None, stamp: str) -> NightView:
    """The night as archived at `stamp` (night_stamp, taken before reading: the rows may be newer, never older)."""
    hits = night_hits(search, night, order="time")
    summary = summarise_night(search, night, hits)
    chosen = Filters(night=night, label=labels or None, band=band or None)
    rows = hits if chosen == Filters(night=night) else search.table(chosen, Page(limit=TABLE_LIMIT, order="time"))
    timed = [h for h in reversed(hits) if h.metadata.date_obs is not None]
    timeline, trends = Markup(), []
    if timed:
        times = [h.metadata.date_obs for h in timed]
        xs = charts.xs_of(times, charts.time_axis(times))
        colours = [LABEL_COLOURS[h.label] for h in timed]
        titles = [f"{h.exposure_id} {h.label.value}" for h in timed]
        timeline = charts.timeline(xs, colours, titles, [f"/exposures/{h.exposure_id}" for h in timed])
        for name, values in (("FWHM (arcsec)", [h.metrics.fwhm_arcsec for h in timed]),
                             ("elongation", [h.metrics.elongation for h in timed]),
                             ("background (ADU)", [h.metrics.background_adu for h in timed])):
            if (line := charts.trend(name, xs, values, colours, titles)) is not None:
                trends.append(line)
    return NightView(night, summary, rows[:TABLE_LIMIT], timeline, trends, stamp)


def night_stamp(search: Search, night: date) -> str:
    count, highest, latest = search.stamp(Filters(night=night))
    return f"{count}-{highest}-{latest}"


def exposure_view(search: Search, exposure_id: str) -> dict:
    """Raises NotFound for an unknown id."""
    record = search.exposure(exposure_id)
    verdict = record["verdict"]
    return {**record, "density": charts.density(verdict["histovector"]),
            "similar": search.similar_to_exposure(exposure_id, SIMILAR_K)}


def label_map(settings: Settings) -> tuple[str, LabelMap]:
    """The DESOM-2 version serving now (settings.models.desom2_version, "latest" by default) and its labels."""
    version, directory = resolve_version(settings.models.repository, settings.models.desom2,
                                         settings.models.desom2_version)
    return version, LabelMap.load(directory / "labels.json")


def som_map(search: Search, labels: LabelMap) -> list[list[dict]]:
    """DESOM-2 cells as rows (y) of {x, y, label, colour, members}."""
    counts = search.cell_counts()
    nx, ny = labels.grid
    return [[{"x": x, "y": y, "label": labels.label_of(y * nx + x),
              "colour": LABEL_COLOURS[labels.label_of(y * nx + x)], "members": counts.get((x, y), 0)}
             for x in range(nx)] for y in range(ny)]


def cell_view(search: Search, labels: LabelMap, x: int, y: int) -> dict:
    members = search.list(Filters(cell=(x, y)), Page(limit=GALLERY, order="time"))
    vectors = search.histovectors([h.verdict_id for h in members[:DENSITY_SAMPLES]])
    entry = labels.cells.get(y * labels.grid[0] + x)
    return {"x": x, "y": y, "members": members, "total": search.stamp(Filters(cell=(x, y)))[0],
            "entry": entry, "label": labels.label_of(y * labels.grid[0] + x),
            "distribution": Counter(h.label.value for h in members).most_common(),
            "samples": [(h, charts.density(vectors[h.verdict_id])) for h in members[:DENSITY_SAMPLES]]}


class Previews:
    """The preview store, asked per exposure id; a hostile id has no preview rather than an error."""

    def __init__(self, location: Path) -> None:
        self.store = PreviewStore(location)

    def has(self, exposure_id: str) -> bool:
        try:
            return self.store.path(exposure_id) is not None
        except ValueError:
            return False

    def get(self, exposure_id: str) -> Preview | None:
        try:
            return self.store.get(exposure_id)
        except ValueError:
            return None


@lru_cache(maxsize=4)
def prototypes_png(directory: Path) -> bytes:
    """The DESOM-1 prototype grid of one published version (immutable, so cached by its directory)."""
    prototypes = np.load(directory / "prototypes.npy")
    side = int(round(np.sqrt(len(prototypes))))
    return prototype_grid(prototypes, side)


def desom1_directory(settings: Settings) -> Path:
    return resolve_version(settings.models.repository, settings.models.desom1, settings.models.desom1_version)[1]
