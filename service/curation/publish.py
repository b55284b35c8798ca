"""Publishing a curated DESOM-2 version: the parent's ONNX, scaler, lineage and calibration, a new labels.json.

Interfaces (used by the web app and `skyqa curation publish|revert`):
- `publish_edits(archive, repository, name, user, note="") -> Published`: the latest version + its pending
  edits become version latest+1; the edits are marked published in the same database transaction (two
  publishers at once: one wins, the other gets `NothingToPublish` or `VersionExists` and writes nothing).
- `republish(repository, name, source_version, user, note="") -> Published`: undo: the labels of an earlier
  version (same ONNX as the latest) published again as a new version; nothing is ever overwritten.
`Published.version` is the new version; `classify` and a reloading daemon use it on their next model load.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from skyqa.service.archive.models import CurationEdit
from skyqa.service.archive.store import Archive
from skyqa.service.curation.edits import Edit, draft, list_edits
from skyqa.service.labels import Label, LabelMap
from skyqa.service.modelcard import CARD, with_curation
from skyqa.service.modelrepo import VersionExists, new_version, resolve_version

LABELS = "labels.json"


class NothingToPublish(ValueError):
    """No pending edit for the latest version."""


@dataclass(frozen=True)
class Published:
    version: str
    parent: str
    edits: list[Edit] = field(default_factory=list)


def publish_edits(archive: Archive, repository: Path, name: str, user: str, note: str = "") -> Published:
    current = draft(archive, repository, name)
    parent, parent_dir, edits = current.version, current.directory, current.edits
    if not edits:
        stale = sorted({e.desom2_version for e in list_edits(archive, pending=True)})
        older = f" ({len(stale)} older version(s) have unpublished edits: {', '.join(stale)})" if stale else ""
        raise NothingToPublish(f"{name} v{parent}: no pending curation edits{older}")
    items = [_describe(edit) for edit in edits]
    with Session(archive.engine) as session, session.begin():
        with new_version(repository, name) as (version, staging):
            if int(version) != int(parent) + 1:  # a version appeared since the draft: it is not what we edited
                raise VersionExists(f"{name} v{int(version) - 1} was published after v{parent}, which these edits are on")
            claimed = session.execute(
                update(CurationEdit)
                .where(CurationEdit.id.in_([e.id for e in edits]), CurationEdit.published_version.is_(None))
                .values(published_version=version))
            if claimed.rowcount != len(edits):  # another publisher took them first: leave no version behind
                raise NothingToPublish(f"{name} v{parent}: the pending edits were published concurrently")
            _write(parent_dir, staging, version, current.labels,
                   f"{len(edits)} edit(s) of v{parent} published by {user} at {_now()}{_why(note)}", items)
    return Published(version, parent, edits)


def republish(repository: Path, name: str, source_version: str, user: str, note: str = "") -> Published:
    parent, parent_dir = resolve_version(repository, name, "latest")
    source, source_dir = resolve_version(repository, name, source_version)
    if not filecmp.cmp(parent_dir / "model.onnx", source_dir / "model.onnx", shallow=False):
        raise ValueError(f"{name} v{source} has another model.onnx than v{parent}: its labels name other cells")
    labels = LabelMap.load(source_dir / LABELS)
    with new_version(repository, name) as (version, staging):
        _write(parent_dir, staging, version, labels,
               f"labels of v{source} published again by {user} at {_now()} (undo){_why(note)}", [])
    return Published(version, parent)


def _write(parent_dir: Path, staging: Path, version: str, labels: LabelMap, heading: str, items: list[str]) -> None:
    """Everything of the parent but its labels and card (ONNX, scaler, lineage, calibration), then both anew."""
    for path in parent_dir.iterdir():
        if path.is_file() and path.name not in (LABELS, CARD):
            shutil.copy2(path, staging / path.name)
    labels.save(staging / LABELS)
    lineage = parent_dir / "lineage.json"
    desom1 = json.loads(lineage.read_text())["desom1_version"] if lineage.exists() else "?"
    parent_card = (parent_dir / CARD).read_text() if (parent_dir / CARD).exists() else ""
    (staging / CARD).write_text(with_curation(parent_card, desom1, version, heading, items))


def _describe(edit: Edit) -> str:
    what = "cleared" if edit.label is Label.UNLABELLED else edit.label.value
    note = f": {edit.note}" if edit.note else ""
    return f"cell {edit.cell} -> {what} (edit {edit.id}, {edit.user}, {edit.created_at:%Y-%m-%d %H:%M}Z){note}"


def _why(note: str) -> str:
    return f": {note}" if note else ""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
