"""Night summaries: how the night went, from the archive's latest verdicts of one observing night."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
from pydantic import BaseModel

from skyqa.service.search.filters import MAX_PAGE, Filters, Hit, Page
from skyqa.service.search.library import Search

PERCENTILES = (10, 50, 90)


class HourSummary(BaseModel):
    hour_utc: int
    exposures: int
    fwhm_arcsec: dict[str, float] | None
    elongation: dict[str, float] | None


class NightSummary(BaseModel):
    night: date
    exposures: int
    labels: dict[str, int]
    usable_fraction: float | None
    hours: list[HourSummary]


def night_hits(search: Search, night: date, order: str = "exposure") -> list[Hit]:
    """The night's latest verdicts as table rows (`Search.table`: the column metrics, no documents decoded)."""
    hits: list[Hit] = []
    while True:  # a night is hundreds of exposures: read it in pages
        page = search.table(Filters(night=night), Page(limit=MAX_PAGE, offset=len(hits), order=order))
        hits += page
        if len(page) < MAX_PAGE:
            return hits


def summarise_night(search: Search, night: date, hits: list[Hit] | None = None) -> NightSummary:
    """The summary of `night`, from its `hits` when the caller has read them already (the web's night page)."""
    hits = night_hits(search, night) if hits is None else hits
    judged = [h.usable for h in hits if h.usable is not None]
    by_hour: dict[int, list] = {}
    for hit in hits:
        if hit.metadata.date_obs is not None:
            by_hour.setdefault(hit.metadata.date_obs.hour, []).append(hit)
    return NightSummary(
        night=night,
        exposures=len(hits),
        labels=dict(Counter(h.label.value for h in hits)),
        usable_fraction=sum(judged) / len(judged) if judged else None,
        hours=[HourSummary(hour_utc=hour, exposures=len(members),
                           fwhm_arcsec=_percentiles([h.metrics.fwhm_arcsec for h in members]),
                           elongation=_percentiles([h.metrics.elongation for h in members]))
               for hour, members in sorted(by_hour.items())],
    )


def _percentiles(values: list[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {f"p{p}": float(np.percentile(present, p)) for p in PERCENTILES}
