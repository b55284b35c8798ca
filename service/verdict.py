"""The verdict: what skyqa says about one exposure, identical from `classify` and from the daemon."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from skyqa.service.labels import Label

# 2: + metadata (read from the primary header). Optional with a default, so v1 documents still load and v1
# consumers (pydantic ignores unknown fields) keep reading v2 documents.
VERDICT_SCHEMA_VERSION = 2


class PhysicalMetrics(BaseModel):
    """The numbers operators read beside the label (medians over the sources used for cutouts)."""

    fwhm_arcsec: float | None = Field(None, description="median FWHM of point-like sources")
    elongation: float | None = Field(None, description="median a/b of detected sources")
    position_angle_deg: float | None = Field(None, description="circular median of source position angle, [0, 180)")
    background_adu: float | None = Field(None, description="median sky level over usable CCDs")
    background_rms_adu: float | None = Field(None, description="median sky RMS over usable CCDs")
    detections_per_ccd: float | None = None
    saturated_fraction: float | None = Field(None, description="fraction of detections touching saturation")
    background_structure: float | None = Field(
        None, description="spread of the smooth background within a CCD, in pixel-noise units (80th pct over CCDs)")
    exptime_s: float | None = Field(None, description="EXPTIME from the primary header")


class ExposureMetadata(BaseModel):
    """What the archive files an exposure under, from its primary header; None where absent or malformed."""

    instrument: str | None = None
    filter: str | None = Field(None, description="FILTER keyword as written, e.g. r.MP9602")
    exptime_s: float | None = None
    airmass: float | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    date_obs: datetime | None = Field(None, description="UTC start of the exposure (DATE-OBS, else from MJD-OBS)")
    mjd_obs: float | None = None
    object: str | None = None
    night: date | None = Field(None, description="observing night: the site's local date at the start of the night")


class ModelVersions(BaseModel):
    desom1: str
    desom2: str


class Verdict(BaseModel):
    schema_version: int = VERDICT_SCHEMA_VERSION
    exposure_id: str
    label: Label
    usable: bool | None = Field(description="True for Good, False for a curated bad label, None if unlabelled")
    cell: tuple[int, int] | None = Field(description="DESOM-2 cell (x, y); None when there was nothing to map")
    cell_index: int | None
    distance: float | None = Field(description="squared latent distance to the cell prototype: a novelty score")
    histovector: list[int] = Field(description="raw 625-bin histo-vector (25 x 25 density map, row-major)")
    metrics: PhysicalMetrics
    detections: int = Field(description="total detected sources W (scaled to 36 CCDs)")
    cutouts: int
    ccds: int = Field(description="CCD image HDUs in the file")
    dead_ccds: list[str]
    skipped_ccds: dict[str, str] = Field(default_factory=dict,
                                         description="CCDs not searched (EXTNAME -> why), e.g. smaller than a cutout")
    timings_s: dict[str, float] = Field(description="wall time per stage, seconds")
    models: ModelVersions
    notes: list[str] = Field(default_factory=list, description="why a verdict is degraded, e.g. no sources")
    metadata: ExposureMetadata = Field(default_factory=ExposureMetadata, description="from the primary header")

    def deterministic_dump(self) -> dict:
        """Everything but timings: equal for any re-processing of the same file by the same models."""
        return self.model_dump(mode="json", exclude={"timings_s"})
