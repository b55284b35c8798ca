"""The archive's tables as SQLAlchemy 2 typed models; Alembic migrations (migrations/) create them.

One `exposures` row per exposure (metadata, pointer to its latest verdict), one `verdicts` row per exposure and
model-version pair (re-processing by the same models updates it, new models add a row: the history), and one
`dead_letters` row per rejected event, kept generically (the full record as JSON beside the triage columns), and
one `curation_edits` row per expert edit of a DESOM-2 cell label (skyqa.service.curation).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Exposure(Base):
    __tablename__ = "exposures"

    exposure_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    instrument: Mapped[str | None] = mapped_column(String(256))
    filter: Mapped[str | None] = mapped_column(String(256), index=True)
    exptime_s: Mapped[float | None] = mapped_column(Float)
    airmass: Mapped[float | None] = mapped_column(Float)
    ra_deg: Mapped[float | None] = mapped_column(Float)
    dec_deg: Mapped[float | None] = mapped_column(Float)
    date_obs: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    mjd_obs: Mapped[float | None] = mapped_column(Float)
    object: Mapped[str | None] = mapped_column(String(256))
    night: Mapped[date | None] = mapped_column(Date, index=True)
    # No FK: verdicts reference exposures, and a cycle of FKs makes inserts order-dependent.
    latest_verdict_id: Mapped[int | None] = mapped_column(Integer, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VerdictRow(Base):
    __tablename__ = "verdicts"
    __table_args__ = (
        UniqueConstraint("exposure_id", "desom1_version", "desom2_version", name="uq_verdicts_exposure_models"),
        Index("ix_verdicts_label_distance", "label", "distance"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exposure_id: Mapped[str] = mapped_column(ForeignKey("exposures.exposure_id"), index=True)
    desom1_version: Mapped[str] = mapped_column(String(64))
    desom2_version: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(32))
    usable: Mapped[bool | None]
    cell_x: Mapped[int | None] = mapped_column(Integer)
    cell_y: Mapped[int | None] = mapped_column(Integer)
    cell_index: Mapped[int | None] = mapped_column(Integer, index=True)
    distance: Mapped[float | None] = mapped_column(Float)
    fwhm_arcsec: Mapped[float | None] = mapped_column(Float)
    elongation: Mapped[float | None] = mapped_column(Float)
    position_angle_deg: Mapped[float | None] = mapped_column(Float)
    background_adu: Mapped[float | None] = mapped_column(Float)
    background_rms_adu: Mapped[float | None] = mapped_column(Float)
    saturated_fraction: Mapped[float | None] = mapped_column(Float)
    background_structure: Mapped[float | None] = mapped_column(Float)
    detections: Mapped[int] = mapped_column(Integer)
    cutouts: Mapped[int] = mapped_column(Integer)
    # 625 little-endian int32 counts: 2.5 kB a row, read back in one numpy call for the search index.
    histovector: Mapped[bytes] = mapped_column(LargeBinary)
    document: Mapped[dict] = mapped_column(JSON, doc="the verdict as published (schema_version inside) less its histovector, stored above")
    source: Mapped[str] = mapped_column(String(32), doc="dir | kafka | import")
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # sha256 of the record's bytes: a record delivered twice (consumer restart, re-import) is stored once.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(128), index=True)
    message: Mapped[str | None] = mapped_column(String)
    exposure_id: Mapped[str | None] = mapped_column(String(128), index=True)
    origin: Mapped[str | None] = mapped_column(String, doc="the raw event text or the rejected file's path")
    record: Mapped[dict] = mapped_column(JSON, doc="the whole dead-letter record, whatever fields it carries")
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    archived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CurationEdit(Base):
    """An expert's edit of one DESOM-2 cell's label, against the version it was made on; pending until a publish
    writes it into a new version's labels.json (`published_version`)."""

    __tablename__ = "curation_edits"
    __table_args__ = (Index("ix_curation_edits_pending", "desom2_version", "published_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    desom2_version: Mapped[str] = mapped_column(String(64))
    cell_x: Mapped[int] = mapped_column(Integer)
    cell_y: Mapped[int] = mapped_column(Integer)
    cell_index: Mapped[int] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(32), doc="the new label; NULL clears the cell (unlabelled)")
    note: Mapped[str] = mapped_column(String, default="")
    user: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    published_version: Mapped[str | None] = mapped_column(String(64))
