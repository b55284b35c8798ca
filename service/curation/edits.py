"""Cell label edits: the one way an expert's change reaches a label map, from the archive or from a CSV.

Interfaces (used by the web app, `skyqa curation` and `skyqa curate --edits`):
- `Edit`: one edit (cell index, new label, `Label.UNLABELLED` = cleared, note, user, when, archive id).
- `record_edit(archive, repository, name, cell=..., label=..., note=..., user=..., version="latest") -> Edit`:
  stores an edit against a DESOM-2 version (resolved now, so "latest" means the map the expert looked at);
  raises `ValueError` for a cell outside that version's grid.
- `list_edits(archive, version=None, pending=None) -> list[Edit]`: oldest first; `pending=True` only the unpublished.
- `draft(archive, repository, name) -> Draft`: the latest version, its pending edits and its labels with them
  applied: what a publish would write now (the web app shows it before publishing).
- `apply_edits(label_map, edits) -> LabelMap`: later edits of a cell win; entries become `source="expert"`
  with the edit's provenance (user, edited_at, edit_id, note).
- `read_edits_csv(path) -> list[Edit]`: the `cell,label[,note]` CSV of `skyqa curate --edits`.
- `cell_index(cell, grid)`: an index, or (x, y) with index = y * nx + x as in verdicts.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from skyqa.service.archive.models import CurationEdit
from skyqa.service.archive.store import Archive
from skyqa.service.labels import CellLabel, Label, LabelMap
from skyqa.service.modelrepo import resolve_version

MAX_NOTE = 2000


@dataclass(frozen=True)
class Edit:
    cell: int
    label: Label  # Label.UNLABELLED clears the cell
    note: str = ""
    user: str | None = None
    created_at: datetime | None = None
    id: int | None = None
    desom2_version: str | None = None
    published_version: str | None = None


@dataclass(frozen=True)
class Draft:
    version: str  # the latest version, the one the edits apply to
    directory: Path
    edits: list[Edit]  # pending, oldest first
    labels: LabelMap  # the version's labels with the pending edits applied


def draft(archive: Archive, repository: Path, name: str) -> Draft:
    version, directory = resolve_version(repository, name, "latest")
    edits = list_edits(archive, version=version, pending=True)
    return Draft(version, directory, edits, apply_edits(LabelMap.load(directory / "labels.json"), edits))


def cell_index(cell: int | tuple[int, int], grid: tuple[int, int]) -> int:
    """A cell given as an index or as (x, y), checked against the map's grid."""
    nx, ny = grid
    index = cell if isinstance(cell, int) else cell[1] * nx + cell[0]
    inside = 0 <= index < nx * ny if isinstance(cell, int) else 0 <= cell[0] < nx and 0 <= cell[1] < ny
    if not inside:
        raise ValueError(f"cell {cell} is outside the {nx} x {ny} map")
    return index


def apply_edits(label_map: LabelMap, edits: Iterable[Edit]) -> LabelMap:
    cells = dict(label_map.cells)
    for edit in edits:
        members = cells[edit.cell].members if edit.cell in cells else 0
        cells[edit.cell] = CellLabel(label=edit.label, source="expert", members=members, note=edit.note,
                                     user=edit.user, edited_at=edit.created_at, edit_id=edit.id)
    return label_map.model_copy(update={"cells": dict(sorted(cells.items()))})


def read_edits_csv(path: Path) -> list[Edit]:
    """`cell,label[,note]` rows; label `Unlabelled` clears a cell."""
    with open(path, newline="") as handle:
        return [Edit(cell=int(row["cell"]), label=Label(row["label"]), note=row.get("note") or "")
                for row in csv.DictReader(handle)]


def record_edit(archive: Archive, repository: Path, name: str, *, cell: int | tuple[int, int], label: Label,
                note: str = "", user: str, version: str = "latest") -> Edit:
    resolved, directory = resolve_version(repository, name, version)
    grid = LabelMap.load(directory / "labels.json").grid
    index = cell_index(cell, grid)
    if not user:
        raise ValueError("an edit needs the user who made it")
    row = CurationEdit(desom2_version=resolved, cell_x=index % grid[0], cell_y=index // grid[0], cell_index=index,
                       label=None if label is Label.UNLABELLED else label.value, note=note[:MAX_NOTE], user=user,
                       created_at=datetime.now(UTC))
    with Session(archive.engine) as session, session.begin():
        session.add(row)
        session.flush()
        return to_edit(row)


def list_edits(archive: Archive, version: str | None = None, pending: bool | None = None) -> list[Edit]:
    query = select(CurationEdit).order_by(CurationEdit.id)
    if version is not None:
        query = query.where(CurationEdit.desom2_version == version)
    if pending is not None:
        published = CurationEdit.published_version
        query = query.where(published.is_(None) if pending else published.is_not(None))
    with Session(archive.engine) as session:
        return [to_edit(row) for row in session.scalars(query)]


def to_edit(row: CurationEdit) -> Edit:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)  # SQLite drops it
    return Edit(cell=row.cell_index, label=Label(row.label) if row.label else Label.UNLABELLED, note=row.note,
                user=row.user, created_at=created, id=row.id, desom2_version=row.desom2_version,
                published_version=row.published_version)
