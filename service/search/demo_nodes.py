"""The DESOM-1 nodes an archived label over-populates most (mean node fraction of its exposures minus that of
all): a content-search node set without looking at prototype pictures, e.g. donut-shaped sources for BadFocus."""

from __future__ import annotations

import argparse

import numpy as np
from sqlalchemy import select

from skyqa.service.archive.models import Exposure, VerdictRow
from skyqa.service.archive.store import Archive, histovectors
from skyqa.service.config import load_settings
from skyqa.service.labels import Label
from skyqa.service.search.representation import fractions


def typical_nodes(archive: Archive, label: Label, top: int) -> list[int]:
    with archive.engine.connect() as connection:
        rows = connection.execute(select(VerdictRow.label, VerdictRow.histovector)
                                  .join(Exposure, Exposure.latest_verdict_id == VerdictRow.id)).all()
    shares = fractions(histovectors([r.histovector for r in rows]))
    mine = np.array([r.label == label.value for r in rows])
    if not mine.any():
        raise SystemExit(f"no archived exposure labelled {label.value}")
    excess = shares[mine].mean(axis=0) - shares.mean(axis=0)
    return sorted(int(n) for n in np.argsort(-excess)[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", type=Label, required=True)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    print(",".join(map(str, typical_nodes(Archive(load_settings().archive.url), args.label, args.top))))


if __name__ == "__main__":
    main()
