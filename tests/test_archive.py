"""The archive on SQLite and on a real PostgreSQL server: migrations, idempotent upserts, history, dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from skyqa.cli import main
from skyqa.service.archive.models import Base, DeadLetterRow, Exposure, VerdictRow
from skyqa.service.archive.schema import current_revision, head_revision, migrate
from skyqa.service.archive.store import Archive, open_engine
from skyqa.service.labels import Label
from tests.archive_fixtures import archive, archive_url, postgres_server  # noqa: F401 - fixtures
from tests.verdict_factory import make_verdict, random_histovectors

VECTORS, _ = random_histovectors(8, seed=1)


def test_an_empty_database_is_migrated_to_head_and_matches_the_models(archive_url: str) -> None:
    engine = open_engine(archive_url)
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == head_revision() == "0003"
    migrate(engine)  # again: a no-op
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_the_previous_revision_upgrades_with_its_rows_kept(archive_url: str) -> None:
    engine = open_engine(archive_url)
    migrate(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO exposures (exposure_id, updated_at) VALUES ('old1', :t)"),
                           {"t": "2026-01-01T00:00:00+00:00"})
    migrate(engine)
    archive = Archive(archive_url)
    archive.write(dead_letters=[b'{"reason": "not_fits"}'])
    assert archive.counts() == {"exposures": 1, "verdicts": 0, "dead_letters": 1}
    archive.close()
    engine.dispose()


def test_same_models_update_the_row_new_models_keep_history(archive: Archive) -> None:
    first = make_verdict("e1", VECTORS[0], Label.GOOD, models=("1", "1"))
    archive.write([first])
    archive.write([first.model_copy(update={"label": Label.BT})])  # same models again: updates
    assert archive.counts()["verdicts"] == 1
    archive.write([make_verdict("e1", VECTORS[1], Label.RBT, models=("2", "3"))])
    with archive.engine.connect() as c:
        rows = c.execute(select(VerdictRow.label, VerdictRow.desom2_version).order_by(VerdictRow.id)).all()
        latest = c.execute(select(VerdictRow.label).join(Exposure, Exposure.latest_verdict_id == VerdictRow.id)).all()
        stored = c.scalar(select(VerdictRow.histovector).where(VerdictRow.desom2_version == "3"))
    assert rows == [("BT", "1"), ("RBT", "3")]
    assert latest == [("RBT",)]
    assert np.array_equal(np.frombuffer(stored, "<i4"), VECTORS[1])


def test_a_batch_may_hold_an_exposure_twice_and_metadata_survives_a_v1_verdict(archive: Archive) -> None:
    v2 = make_verdict("e2", VECTORS[2])
    v1 = v2.model_copy(update={"schema_version": 1, "metadata": type(v2.metadata)()})
    archive.write([v2, v2])
    archive.write([v1])  # an old verdict (no metadata) re-imported: the metadata already known stays
    with archive.engine.connect() as c:
        band, airmass, night = c.execute(select(Exposure.filter, Exposure.airmass, Exposure.night)).one()
    assert (band, airmass, str(night)) == ("r.MP9602", 1.2, "2026-11-22")
    assert archive.counts() == {"exposures": 1, "verdicts": 1, "dead_letters": 0}


def test_dead_letters_are_kept_generically_and_once(archive: Archive) -> None:
    record = {"schema_version": 2, "reason": "processing_error", "stage": "classify", "detail": "boom",
              "exception_type": "ZeroDivisionError", "exposure_id": "e9", "event_text": "{...}",
              "failed_at": "2026-11-23T07:00:00+00:00"}
    raw = json.dumps(record).encode()
    archive.write(dead_letters=[raw, raw, b"\xff not json"])
    archive.write(dead_letters=[raw])
    with archive.engine.connect() as c:
        rows = c.execute(select(DeadLetterRow.reason, DeadLetterRow.exposure_id, DeadLetterRow.message,
                                DeadLetterRow.record, DeadLetterRow.failed_at).order_by(DeadLetterRow.id)).all()
    assert [(r.reason, r.exposure_id, r.message) for r in rows] == [
        ("processing_error", "e9", "boom"), ("undecodable_dead_letter", None, None)]
    assert rows[0].record["exception_type"] == "ZeroDivisionError"
    assert rows[0].failed_at.year == 2026


def test_sqlite_archive_is_created_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    archive = Archive(f"sqlite:///{tmp_path / 'new' / 'dir' / 'a.db'}")
    with archive.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "new" / "dir" / "a.db").exists()
    archive.close()


def test_import_backfills_classify_output_verdict_files_and_dead_letters(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'a.db'}"
    lines = tmp_path / "night.jsonl"
    lines.write_text("\n".join(make_verdict(f"x{i}", VECTORS[i]).model_dump_json() for i in range(3)) + "\n")
    verdicts_dir = tmp_path / "incoming" / "verdicts"
    verdicts_dir.mkdir(parents=True)
    (verdicts_dir / "x7.json").write_text(make_verdict("x7", VECTORS[7]).model_dump_json(indent=2))
    (tmp_path / "incoming" / "bad.fits.reason.json").write_text(json.dumps({"reason": "truncated", "detail": "cut"}))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(make_verdict("x5", VECTORS[5]).model_dump_json() + '\n{"label": "Good"}\nnot json\n')

    assert main(["archive", "--url", url, "import", str(lines), str(tmp_path / "incoming"), str(broken)]) == 1
    out, err = capsys.readouterr()
    assert "broken.jsonl:2: neither a verdict" in err and "broken.jsonl:3: not JSON" in err
    assert "archive holds 5 verdicts of 5 exposures and 1 dead letters" in out
    assert main(["archive", "--url", url, "import", str(lines)]) == 0  # again: nothing new
    assert Archive(url).counts() == {"exposures": 5, "verdicts": 5, "dead_letters": 1}


def test_migrate_command_reports_the_revision(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["archive", "--url", f"sqlite:///{tmp_path / 'm.db'}", "migrate"]) == 0
    assert "archive at revision 0003" in capsys.readouterr().out
