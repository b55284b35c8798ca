"""Writing to the archive: one transaction per batch, idempotent upserts, so a batch written twice lands once.

A verdict is keyed by (exposure, DESOM-1 version, DESOM-2 version): the same exposure processed again by the
same models updates its row, new models add a row (the history) and become the exposure's latest verdict.
A dead letter is keyed by the digest of its bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, bindparam, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from skyqa.service.archive.models import DeadLetterRow, Exposure, VerdictRow
from skyqa.service.archive.schema import migrate
from skyqa.service.verdict import Verdict

METADATA_COLUMNS = ("instrument", "filter", "exptime_s", "airmass", "ra_deg", "dec_deg", "date_obs", "mjd_obs",
                    "object", "night")
METRIC_COLUMNS = ("fwhm_arcsec", "elongation", "position_angle_deg", "background_adu", "background_rms_adu",
                  "saturated_fraction", "background_structure")


def open_engine(url: str) -> Engine:
    """An engine for `url`; an SQLite file (and its directory) is created on first use, in WAL mode so the API
    reads while the daemon writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI objects
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Archive:
    """The archive behind `url`, migrated to the current schema on open (idempotent; PostgreSQL serialises it)."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = open_engine(url)
        if migrate_schema:
            migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(self, verdicts: Sequence[Verdict] = (), dead_letters: Sequence[bytes] = (), source: str = "dir") -> None:
        """Everything in one transaction: all of it lands, or none of it (the caller retries the batch)."""
        with self.engine.begin() as connection:
            if verdicts:
                self._upsert_verdicts(connection, verdicts, source)
            if dead_letters:
                self._insert_dead_letters(connection, dead_letters)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {table.__tablename__: connection.scalar(select(func.count()).select_from(table)) or 0
                    for table in (Exposure, VerdictRow, DeadLetterRow)}

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table):  # noqa: ANN001, ANN202 - the dialect's INSERT with ON CONFLICT
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _upsert_verdicts(self, connection: Connection, verdicts: Sequence[Verdict], source: str) -> None:
        now = datetime.now(UTC)
        # One statement may not touch a key twice (PostgreSQL refuses): the last occurrence in the batch wins.
        exposures = {v.exposure_id: exposure_row(v, now) for v in verdicts}
        rows = {(v.exposure_id, v.models.desom1, v.models.desom2): verdict_row(v, source, now) for v in verdicts}

        stmt = self._insert(Exposure)
        keep = {c: func.coalesce(stmt.excluded[c], Exposure.__table__.c[c]) for c in METADATA_COLUMNS}
        connection.execute(stmt.on_conflict_do_update(index_elements=["exposure_id"],
                                                      set_={**keep, "updated_at": stmt.excluded.updated_at}),
                           list(exposures.values()))

        stmt = self._insert(VerdictRow)
        changed = {c.name: stmt.excluded[c.name] for c in VerdictRow.__table__.columns if c.name != "id"}
        upsert = stmt.on_conflict_do_update(index_elements=["exposure_id", "desom1_version", "desom2_version"],
                                            set_=changed).returning(VerdictRow.id, VerdictRow.exposure_id,
                                                                    sort_by_parameter_order=True)
        written = connection.execute(upsert, list(rows.values())).all()
        table = Exposure.__table__
        connection.execute(
            update(table).where(table.c.exposure_id == bindparam("eid")).values(latest_verdict_id=bindparam("vid")),
            [{"eid": exposure, "vid": verdict_id} for verdict_id, exposure in written],
        )

    def _insert_dead_letters(self, connection: Connection, records: Sequence[bytes]) -> None:
        now = datetime.now(UTC)
        rows = {row["digest"]: row for row in (dead_letter_row(raw, now) for raw in records)}
        stmt = self._insert(DeadLetterRow).on_conflict_do_nothing(index_elements=["digest"])
        connection.execute(stmt, list(rows.values()))


def exposure_row(verdict: Verdict, now: datetime) -> dict:
    return {"exposure_id": verdict.exposure_id, **verdict.metadata.model_dump(include=set(METADATA_COLUMNS)),
            "updated_at": now}


def verdict_row(verdict: Verdict, source: str, now: datetime) -> dict:
    metrics = verdict.metrics
    return {
        "exposure_id": verdict.exposure_id,
        "desom1_version": verdict.models.desom1,
        "desom2_version": verdict.models.desom2,
        "schema_version": verdict.schema_version,
        "label": verdict.label.value,
        "usable": verdict.usable,
        "cell_x": verdict.cell[0] if verdict.cell else None,
        "cell_y": verdict.cell[1] if verdict.cell else None,
        "cell_index": verdict.cell_index,
        "distance": verdict.distance,
        **{c: getattr(metrics, c) for c in METRIC_COLUMNS},
        "detections": verdict.detections,
        "cutouts": verdict.cutouts,
        "histovector": np.asarray(verdict.histovector, dtype="<i4").tobytes(),
        "document": verdict.model_dump(mode="json", exclude={"histovector"}),  # the vector is in its own column
        "source": source,
        "processed_at": now,
    }


def dead_letter_row(raw: bytes, now: datetime) -> dict:
    """Any record shape: the fields triage needs when present, the whole record always."""
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {"reason": "undecodable_dead_letter", "raw": raw.decode("utf-8", errors="replace")}
    origin = record.get("event_text") or record.get("path") or record.get("source")
    return {
        "digest": hashlib.sha256(raw).hexdigest(),
        "reason": str(record.get("reason") or "unknown")[:128],
        "message": _text(record.get("detail") or record.get("message")),
        "exposure_id": _text(record.get("exposure_id")),
        "origin": origin if isinstance(origin, str) else json.dumps(origin) if origin is not None else None,
        "record": record,
        "failed_at": _timestamp(record.get("failed_at")),
        "archived_at": now,
    }


def histovectors(blobs: Sequence[bytes]) -> np.ndarray:
    """(n, 625) int32 from the stored blobs."""
    return np.frombuffer(b"".join(blobs), dtype="<i4").reshape(len(blobs), -1)


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
