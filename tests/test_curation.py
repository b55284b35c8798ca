"""Curation edits in the archive (SQLite and a real PostgreSQL server) published as new DESOM-2 versions."""

from __future__ import annotations

import filecmp
import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from skyqa.cli import main
from skyqa.service.archive.schema import current_revision, migrate
from skyqa.service.archive.store import Archive, open_engine
from skyqa.service.config import load_settings
from skyqa.service.curation.edits import draft, list_edits, record_edit
from skyqa.service.curation.publish import NothingToPublish, publish_edits, republish
from skyqa.service.labels import Label, LabelMap
from skyqa.service.modelrepo import VersionExists, new_version, versions
from skyqa.service.pipeline.classify import Classifier
from tests.model_repo_factory import write_repository
from tests.archive_fixtures import archive, archive_url, postgres_server  # noqa: F401 - fixtures


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "models", {0: Label.GOOD, 5: Label.BT})


def test_revision_0002_upgrades_to_0003_with_its_rows_kept(archive_url: str) -> None:
    engine = open_engine(archive_url)
    migrate(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO exposures (exposure_id, updated_at) VALUES ('old1', :t)"),
                           {"t": "2026-01-01T00:00:00+00:00"})
    migrate(engine)
    assert current_revision(engine) == "0003"
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM exposures")) == 1
        assert connection.scalar(text("SELECT count(*) FROM curation_edits")) == 0
    engine.dispose()


def test_edits_publish_a_new_version_with_provenance_and_never_touch_the_old(archive: Archive, repo: Path) -> None:
    v1 = repo / "desom2" / "1"
    before = {p.name: p.read_bytes() for p in v1.iterdir()}
    relabel = record_edit(archive, repo, "desom2", cell=(1, 1), label=Label.BADFOCUS, note="donuts", user="ana")
    clear = record_edit(archive, repo, "desom2", cell=0, label=Label.UNLABELLED, note="mixed", user="bo")
    assert (relabel.cell, relabel.desom2_version, relabel.published_version) == (5, "1", None)
    assert [e.id for e in list_edits(archive, pending=True)] == [relabel.id, clear.id]
    pending = draft(archive, repo, "desom2")  # what a publish would write now
    assert (pending.version, len(pending.edits), pending.labels.label_of(5)) == ("1", 2, Label.BADFOCUS)

    done = publish_edits(archive, repo, "desom2", user="chief", note="night 2026-11-28")

    assert (done.version, done.parent, len(done.edits)) == ("2", "1", 2)
    assert versions(repo, "desom2") == [1, 2]
    assert {p.name: p.read_bytes() for p in v1.iterdir()} == before  # the live version is untouched
    v2 = repo / "desom2" / "2"
    for same in ("model.onnx", "scaler.json", "lineage.json"):
        assert filecmp.cmp(v1 / same, v2 / same, shallow=False)
    labels = LabelMap.load(v2 / "labels.json")
    entry = labels.cells[5]
    assert (entry.label, entry.source, entry.user, entry.note, entry.edit_id) == (
        Label.BADFOCUS, "expert", "ana", "donuts", relabel.id)
    assert entry.edited_at == relabel.created_at
    assert labels.label_of(0) is Label.UNLABELLED and labels.cells[0].user == "bo"
    card = (v2 / "model_card.md").read_text()
    assert card.startswith("# skyqa model card: desom1 v1 + desom2 v2")
    assert "## Curation: desom2 v2" in card and "published by chief" in card and "cell 5 -> BadFocus" in card
    assert [e.published_version for e in list_edits(archive)] == ["2", "2"]
    with pytest.raises(NothingToPublish):
        publish_edits(archive, repo, "desom2", user="chief")

    settings = load_settings(models={"repository": repo}, workers=1)
    classifier = Classifier(settings)  # the next model load takes the new version
    assert classifier.versions.desom2 == "2" and classifier.curation.labels.label_of(5) is Label.BADFOCUS
    classifier.close()


def test_undo_publishes_the_previous_labels_again_as_a_new_version(archive: Archive, repo: Path) -> None:
    record_edit(archive, repo, "desom2", cell=5, label=Label.GOOD, user="ana")
    publish_edits(archive, repo, "desom2", user="ana")
    undone = republish(repo, "desom2", "1", user="ana", note="too hasty")
    assert (undone.version, undone.parent) == ("3", "2")
    restored = json.loads((repo / "desom2" / "3" / "labels.json").read_text())
    assert restored == json.loads((repo / "desom2" / "1" / "labels.json").read_text())
    assert "labels of v1 published again by ana" in (repo / "desom2" / "3" / "model_card.md").read_text()


def test_edits_off_the_map_and_undo_across_models_are_refused(archive: Archive, repo: Path) -> None:
    for cell in (16, -1, (4, 0), (0, 4)):  # tiny map: 4 x 4
        with pytest.raises(ValueError, match="outside"):
            record_edit(archive, repo, "desom2", cell=cell, label=Label.BT, user="ana")
    other = repo / "desom2" / "2"
    with new_version(repo, "desom2") as (_, staging):
        for path in (repo / "desom2" / "1").iterdir():
            (staging / path.name).write_bytes(path.read_bytes())
        (staging / "model.onnx").write_bytes(b"retrained")
    assert other.is_dir()
    with pytest.raises(ValueError, match="another model.onnx"):
        republish(repo, "desom2", "1", user="ana")


def test_a_failed_or_raced_version_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_version(tmp_path, "desom2") as (version, staging):
        (staging / "labels.json").write_text("{}")
        raise RuntimeError("disk full")
    assert versions(tmp_path, "desom2") == [] and list((tmp_path / "desom2").iterdir()) == []
    with pytest.raises(VersionExists), new_version(tmp_path, "desom2") as (version, staging):
        (tmp_path / "desom2" / version).mkdir()  # another publisher took "1" meanwhile
        (tmp_path / "desom2" / version / "labels.json").write_text("theirs")
    assert (tmp_path / "desom2" / "1" / "labels.json").read_text() == "theirs"
    assert [p.name for p in (tmp_path / "desom2").iterdir()] == ["1"]


def test_a_published_version_is_readable_by_other_users(tmp_path: Path) -> None:
    """Triton (another uid on the shared k8s volume) reads what the web publishes: no owner-only staging mode."""
    with new_version(tmp_path, "desom2") as (version, staging):
        (staging / "labels.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "desom2" / version).stat().st_mode) == 0o755


def test_cli_edits_lists_publishes_and_reverts(tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["curation", "--url", f"sqlite:///{tmp_path / 'a.db'}", "--repository", str(repo), "--user", "ana"]
    assert main([*base, "edit", "2,1", "BGP", "--note", "scattered light"]) == 0
    edits = tmp_path / "edits.csv"
    edits.write_text("cell,label,note\n0,BadFocus,donuts\n1,Unlabelled,\n")
    assert main([*base, "import", str(edits)]) == 0
    assert main([*base, "list", "--pending", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["cell"], r["label"], r["user"]) for r in rows] == [(6, "BGP", "ana"), (0, "BadFocus", "ana"),
                                                                  (1, "Unlabelled", "ana")]
    assert main([*base, "publish"]) == 0
    assert "desom2 v2: 3 edit(s) of v1 published" in capsys.readouterr().out
    assert LabelMap.load(repo / "desom2" / "2" / "labels.json").label_of(6) is Label.BGP
    assert main([*base, "publish"]) == 1
    assert "no pending curation edits" in capsys.readouterr().err
    assert main([*base, "edit", "99", "BT"]) == 1
    assert main([*base, "revert", "7"]) == 1 and "version '7' not in" in capsys.readouterr().err
    assert main([*base, "edit", "6", "BT"]) == 0  # on v2
    assert main([*base, "revert", "1"]) == 0  # v3: the v2 edit is now on an older version
    assert main([*base, "publish"]) == 1
    assert "1 older version(s) have unpublished edits: 2" in capsys.readouterr().err
    assert LabelMap.load(repo / "desom2" / "3" / "labels.json").label_of(6) is Label.UNLABELLED
