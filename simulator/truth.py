"""The truth manifest (`truth.csv` next to the exposures): the only place the class is written."""

from __future__ import annotations

import csv
from pathlib import Path

from skyqa.simulator.params import ExposureParams

MANIFEST = "truth.csv"
COLUMNS = (
    "exposure_id", "file", "label", "subtype", "seeing_arcsec", "trail_px", "trail_angle_deg", "defocus",
    "exptime", "dead_ccds", "seed", "filter", "airmass", "sky_mag", "star_density", "strength", "size",
    "site", "sky_gradient", "fringe",
)
_FLOATS = {"seeing_arcsec", "trail_px", "trail_angle_deg", "defocus", "exptime", "airmass", "sky_mag",
           "star_density", "strength", "sky_gradient", "fringe"}


def truth_row(p: ExposureParams, file: str, size: str) -> dict[str, str]:
    values = p.as_dict()
    row = {c: values[c] for c in COLUMNS if c in values}
    row.update(exposure_id=str(p.expnum), file=file, size=size, dead_ccds=";".join(map(str, p.dead_ccds)))
    return {c: f"{row[c]:.6g}" if c in _FLOATS else str(row[c]) for c in COLUMNS}


def write_truth(path: Path, rows: list[dict[str, str]]) -> None:
    """Write (or merge into) a manifest; rows of an exposure already listed are replaced."""
    merged = {r["exposure_id"]: r for r in _read_raw(path)} if path.exists() else {}
    merged.update({r["exposure_id"]: r for r in rows})
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(merged[k] for k in sorted(merged))
    tmp.replace(path)


def _read_raw(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def read_truth(path: Path) -> dict[str, dict[str, object]]:
    """exposure_id -> row, with numbers parsed and `dead_ccds` as a tuple of CCD indices.
    `path` may be the manifest or the directory holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    out: dict[str, dict[str, object]] = {}
    for raw in _read_raw(path):
        row: dict[str, object] = dict(raw)
        for c in _FLOATS & raw.keys():
            row[c] = float(raw[c])
        row["seed"] = int(raw["seed"])
        row["dead_ccds"] = tuple(int(v) for v in raw["dead_ccds"].split(";") if v)
        out[raw["exposure_id"]] = row
    return out
