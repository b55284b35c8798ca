"""`skyqa gallery`: static HTML pages a scientist browses to label the DESOM-2 cells.

Plain HTML and PNGs, no JavaScript, so the folder can be opened from disk or served by anything. The index
is the map coloured by label with member counts; each occupied cell has a page with thumbnails of some
members (a cutout mosaic from the dataset shard and a downsampled CCD from the exposure file), the cell's
mean density map and its current label with provenance. Labels come back as `edits.csv` rows
(cell,label,note) that `skyqa curate --edits` turns into expert entries.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from skyqa.service.pipeline.exposure import ExposureError, describe_exposure, fill_nans, read_ccd
from skyqa.service.pipeline.ids import safe_join
from skyqa.service.labels import Label, LabelMap
from skyqa.training import report as pictures
from skyqa.training.curate import read_cells
from skyqa.training.dataset import Entry, read_manifest, shard_cutouts

EDITS = "edits.csv"
MOSAIC = 16  # cutouts per exposure thumbnail (4 x 4)
DESOM1_GRID = (25, 25)  # density maps are drawn over the DESOM-1 nodes
STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:70em}
table.map{border-collapse:collapse}table.map td{width:2.2em;height:2.2em;border:1px solid #bbb;text-align:center;
font-size:.75em}table.map td a{display:block;color:#000;text-decoration:none}
figure{display:inline-block;margin:.4em;vertical-align:top;font-size:.8em}figure img{image-rendering:pixelated}
.swatch{display:inline-block;width:1em;height:1em;border:1px solid #000;margin:0 .3em 0 1em}
pre{background:#f4f4f4;padding:.5em}"""


def _name(exposure_id: str) -> str:
    """A file-name-safe stem for an exposure id."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", exposure_id)


def cell_stem(cell: int) -> str:
    """File stem of a cell's page and pictures under `cells/`."""
    return f"cell-{cell:03d}"


def cell_page(cell: int) -> str:
    return f"{cell_stem(cell)}.html"


def _thumbnails(data: Path, entries: Iterable[Entry], out: Path) -> None:
    """Per exposure: a cutout mosaic (one shard load serves all its exposures) and a downsampled CCD."""
    by_shard: dict[str, list[Entry]] = {}
    for entry in entries:
        by_shard.setdefault(entry.shard, []).append(entry)
    with tqdm(total=sum(map(len, by_shard.values())), desc="thumbnails", unit="exp") as bar:
        for shard, members in by_shard.items():
            cutouts = shard_cutouts(data, shard)
            for entry in members:
                stem = _name(entry.exposure_id)
                if entry.stop > entry.start:  # an exposure without sources has no cutouts to show
                    picks = np.linspace(entry.start, entry.stop - 1, min(MOSAIC, entry.stop - entry.start))
                    pictures.cutout_mosaic(cutouts[picks.astype(int)], safe_join(out, f"{stem}_cutouts.png"))
                try:
                    _, ccds = describe_exposure(entry.file)
                    ccd = ccds[len(ccds) // 2]  # a central CCD: background patterns show best away from the edge
                    pictures.ccd_preview(fill_nans(read_ccd(entry.file, ccd)), safe_join(out, f"{stem}_ccd.png"))
                except ExposureError as error:  # file moved or unreadable since the dataset was built
                    tqdm.write(f"gallery: no CCD preview for {entry.exposure_id}: {error}")
                bar.update()


def _page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _provenance(labels: LabelMap, cell: int) -> str:
    entry = labels.cells.get(cell)
    if entry is None:
        return "<b>Unlabelled</b> (no entry in the label map)"
    purity = f", purity {entry.purity:.2f}" if entry.purity is not None else ""
    note = f", note: {html.escape(entry.note)}" if entry.note else ""
    return f"<b>{entry.label.value}</b> (source {entry.source}{purity}, {entry.members} members at curation{note})"


def _instructions(desom2: Path, labels: Path, cell: int | None) -> str:
    example = f"{cell if cell is not None else 17},BadFocus,donut-shaped sources"
    names = ", ".join(label.value for label in Label)
    return (
        "<h2>Labelling</h2>\n<p>Add one line per cell you (re)label to <code>edits.csv</code> in the gallery folder "
        f"(<code>cell,label,note</code>; labels: {names}; <code>Unlabelled</code> clears a cell), e.g.</p>\n"
        f"<pre>cell,label,note\n{html.escape(example)}</pre>\n<p>then apply the edits as expert entries "
        "(they are kept by every later curation):</p>\n"
        f"<pre>skyqa curate --cells {html.escape(str(desom2 / 'cells.csv'))} --truth LABELLED_SAMPLE.csv "
        f"--previous {html.escape(str(labels))} --edits edits.csv --out {html.escape(str(labels))}</pre>"
    )


def _index(cells: dict[int, list[str]], labels: LabelMap, desom2: Path, labels_path: Path) -> str:
    nx, ny = labels.grid
    rows = []
    for y in reversed(range(ny)):  # y up, as in the label map picture
        tds = []
        for x in range(nx):
            k = y * nx + x
            label = labels.label_of(k)
            n = len(cells.get(k, []))
            tip = html.escape(f"cell {k} (x {x}, y {y}): {label.value}, {n} members", quote=True)
            inner = f'<a href="cells/{cell_page(k)}">{n}</a>' if n else ""
            tds.append(f'<td style="background:{pictures.LABEL_COLOURS[label]}" title="{tip}">{inner}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    legend = "".join(f'<span class="swatch" style="background:{pictures.LABEL_COLOURS[label]}"></span>{label.value}'
                     for label in Label)
    total = sum(map(len, cells.values()))
    body = (
        f"<h1>DESOM-2 curation gallery</h1>\n<p>{html.escape(str(desom2))}: {total} exposures in {len(cells)} "
        f"occupied cells of {nx * ny}; labels from {html.escape(str(labels_path))} ({len(labels.cells)} labelled "
        "cells). Numbers are members; click a cell to inspect it.</p>\n"
        f"<table class=\"map\">\n{chr(10).join(rows)}\n</table>\n<p>{legend}</p>\n"
        f"{_instructions(desom2, labels_path, None)}\n"
        '<p><img src="label_map.png" alt="label map" width="600"></p>'
    )
    return _page("DESOM-2 curation gallery", body)


def _cell(cell: int, members: list[str], shown: list[str], entries: dict[str, Entry], thumbs: Path,
          labels: LabelMap, neighbours: tuple[int | None, int | None], desom2: Path, labels_path: Path) -> str:
    nx = labels.grid[0]
    previous, following = neighbours
    nav = ['<a href="../index.html">map</a>']
    nav += [f'<a href="{cell_page(c)}">{word} occupied cell ({c})</a>'
            for word, c in (("previous", previous), ("next", following)) if c is not None]
    figures = []
    for exposure_id in shown:
        entry = entries.get(exposure_id)
        stem, caption = _name(exposure_id), html.escape(exposure_id)
        if entry is not None:
            dead = f", dead {', '.join(entry.dead_ccds)}" if entry.dead_ccds else ""
            caption += f"<br>{entry.weight:.0f} sources, {entry.n_ccds} CCDs{html.escape(dead)}"
        images = "".join(f'<img src="../thumbs/{stem}_{kind}.png" alt="{kind}" height="128">'
                         for kind in ("cutouts", "ccd") if (thumbs / f"{stem}_{kind}.png").exists())
        figures.append(f"<figure>{images}<figcaption>{caption}</figcaption></figure>")
    body = (
        f"<p>{' | '.join(nav)}</p>\n<h1>Cell {cell} (x {cell % nx}, y {cell // nx})</h1>\n"
        f"<p>Current label: {_provenance(labels, cell)}</p>\n"
        f"<p>{len(members)} member exposures; showing {len(shown)}: {MOSAIC} of each exposure's cutouts and "
        "its central CCD.</p>\n"
        f'<p><img src="{cell_stem(cell)}_density.png" alt="mean density map" width="360"></p>\n'
        f"{''.join(figures)}\n{_instructions(desom2, labels_path, cell)}"
    )
    return _page(f"DESOM-2 cell {cell}", body)


def gallery(desom2: Path, data: Path, labels_path: Path, out: Path, per_cell: int = 8, seed: int = 0) -> Path:
    """Writes the gallery under `out` and returns its index page; an existing `edits.csv` is never touched."""
    labels = LabelMap.load(labels_path)
    cells: dict[int, list[str]] = {}
    for exposure_id, cell in sorted(read_cells(desom2 / "cells.csv").items()):
        cells.setdefault(cell, []).append(exposure_id)
    saved = np.load(desom2 / "histovectors.npz")
    vectors = dict(zip((str(i) for i in saved["exposure_id"]), saved["histovector"]))
    entries = {e.exposure_id: e for e in read_manifest(data)}
    rng = np.random.default_rng(seed)
    shown = {c: sorted(rng.choice(ids, min(per_cell, len(ids)), replace=False).tolist()) for c, ids in cells.items()}
    _thumbnails(data, (entries[i] for ids in shown.values() for i in ids if i in entries), out / "thumbs")

    occupied = sorted(cells)
    for i, cell in enumerate(tqdm(occupied, desc="cells", unit="cell")):
        members = cells[cell]
        mean = np.mean([vectors[m] for m in members], axis=0)
        pictures.density_map(mean, DESOM1_GRID, f"cell {cell}: mean density map of {len(members)} exposures",
                             out / "cells" / f"{cell_stem(cell)}_density.png")
        neighbours = (occupied[i - 1] if i else None, occupied[i + 1] if i + 1 < len(occupied) else None)
        page = _cell(cell, members, shown[cell], entries, out / "thumbs", labels, neighbours, desom2, labels_path)
        (out / "cells" / cell_page(cell)).write_text(page)

    occupancy = np.zeros(labels.grid[0] * labels.grid[1], int)
    for cell, members in cells.items():
        occupancy[cell] = len(members)
    pictures.label_map(labels, out / "label_map.png", occupancy.reshape(labels.grid[1], labels.grid[0]))
    edits = out / EDITS
    if not edits.exists():
        edits.write_text("cell,label,note\n")
    index = out / "index.html"
    index.write_text(_index(cells, labels, desom2, labels_path))
    return index
