"""Quality labels and the curated DESOM-2 label map (cell -> label, with provenance)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field


class Label(StrEnum):
    """Quality classes; codes follow the reference map (0 Empty, 1 Good, 2 RBT, 3 BT, 4 B-Seeing, 5 BGP)."""

    UNLABELLED = "Unlabelled"
    GOOD = "Good"
    RBT = "RBT"
    BT = "BT"
    BSEEING = "BSeeing"
    BGP = "BGP"
    BADFOCUS = "BadFocus"

    @property
    def code(self) -> int:
        return list(Label).index(self)

    @property
    def usable(self) -> bool | None:
        """Good is usable, every other curated label is not; an unlabelled cell cannot say."""
        if self is Label.UNLABELLED:
            return None
        return self is Label.GOOD


class CellLabel(BaseModel):
    label: Label
    source: str = Field(description="'vote' (majority of its members), 'neighbours' (empty cell inside one label's region), "
                        "'spread' (reached by its neighbours' votes: skyqa.training.spread) or 'expert' (hand edit, always kept)")
    purity: float | None = None
    confidence: float | None = Field(None, description="share of the spread votes reaching the cell that agree")
    members: int = 0
    note: str = ""


class LabelMap(BaseModel):
    """The curated map for one DESOM-2 version; cells missing from `cells` are unlabelled."""

    grid: tuple[int, int] = (20, 20)
    cells: dict[int, CellLabel] = Field(default_factory=dict)

    def label_of(self, cell: int) -> Label:
        entry = self.cells.get(cell)
        return entry.label if entry else Label.UNLABELLED

    def as_grid(self) -> list[list[int]]:
        """Reference-style array of label codes, rows = y."""
        nx, ny = self.grid
        return [[self.label_of(y * nx + x).code for x in range(nx)] for y in range(ny)]

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> LabelMap:
        return cls.model_validate(json.loads(Path(path).read_text()))
