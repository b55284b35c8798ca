"""Search filters and result rows, shared by the CLI and the HTTP API (validated once, by pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skyqa.service.labels import Label
from skyqa.service.verdict import ExposureMetadata, PhysicalMetrics

MAX_PAGE = 500
MAX_K = 200
RANGED = ("fwhm_arcsec", "elongation", "background_adu", "distance", "airmass")


class Filters(BaseModel):
    """Every condition is optional; given ones combine with AND."""

    model_config = ConfigDict(extra="forbid")

    label: list[Label] | None = None
    usable: bool | None = None
    cell: tuple[int, int] | None = Field(None, description="DESOM-2 cell (x, y)")
    night: date | None = None
    since: datetime | None = Field(None, description="DATE-OBS at or after")
    until: datetime | None = Field(None, description="DATE-OBS before")
    band: str | None = Field(None, max_length=32, description="filter band: matches FILTER values starting with it")
    fwhm_arcsec_min: float | None = None
    fwhm_arcsec_max: float | None = None
    elongation_min: float | None = None
    elongation_max: float | None = None
    background_adu_min: float | None = None
    background_adu_max: float | None = None
    distance_min: float | None = None
    distance_max: float | None = None
    airmass_min: float | None = None
    airmass_max: float | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Filters:
        for name in RANGED:
            low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name}_min > {name}_max")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=1_000_000)
    order: Literal["novelty", "time", "exposure"] = Field(
        "time", description="novelty: largest DESOM-2 distance first; time: newest first; exposure: by id")


class Hit(BaseModel):
    """One exposure in a result: its latest verdict's summary, metadata and the query's score."""

    exposure_id: str
    verdict_id: int
    label: Label
    usable: bool | None
    cell: tuple[int, int] | None
    distance: float | None
    metrics: PhysicalMetrics
    metadata: ExposureMetadata
    models: dict[str, str]
    score: float | None = Field(None, description="similar: squared Hellinger distance; content: fraction of W")
