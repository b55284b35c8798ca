"""A night of exposures: one child seed per exposure (so any subset renders in parallel, identically),
files written atomically (a directory watcher never sees half a file), truth in the manifest."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from skyqa.simulator.exposure import TILE_ROWS, simulate_exposure
from skyqa.simulator.params import DEFAULT_CLASSES, DEFAULT_SITE, draw_label, draw_params, expnum_for
from skyqa.simulator.site import get_site
from skyqa.simulator.truth import MANIFEST, truth_row, write_truth


def exposure_seeds(seed: int, n: int, site: str = DEFAULT_SITE) -> list[int]:
    """Independent per-exposure seeds spawned from the night seed (in the site's seed family)."""
    root = get_site(site).seed_sequence(seed)
    return [int(child.generate_state(1, np.uint64)[0]) for child in root.spawn(n)]


def simulate_one(out_dir: Path, night_seed: int, index: int, exposure_seed: int,
                 size: str | tuple[int, int, int], classes: dict[str, float] | None,
                 dead_ccd_rate: float, compress: bool, label: str | None = None,
                 tile_rows: int = TILE_ROWS, site: str = DEFAULT_SITE) -> dict[str, str]:
    """Render and write exposure `index` of the night (of class `label`, else drawn); returns its truth row."""
    where = get_site(site).for_exposure(exposure_seed)
    geometry = where.geometry(size)
    rng = np.random.default_rng(exposure_seed)
    drawn = draw_label(rng, classes)
    params = draw_params(
        label or drawn,
        rng,
        expnum=expnum_for(night_seed, index, where.expnum_base),
        n_ccds=geometry.n_ccds,
        dead_ccd_rate=dead_ccd_rate,
        night_start=datetime(2020, 1, 1, 5, 0, 0) + timedelta(days=night_seed % 1500),
        seed=exposure_seed,
        site=where,
    )
    name = f"{params.expnum}p.fits" + (".fz" if compress else "")
    tmp = out_dir / f".{name}.part"
    simulate_exposure(params, geometry, rng, compress=compress, tile_rows=tile_rows).writeto(tmp, overwrite=True)
    tmp.replace(out_dir / name)
    size_name = size if isinstance(size, str) else "x".join(map(str, size))
    return truth_row(params, name, size_name)


def simulate_night(out_dir: Path, n: int, seed: int, size: str | tuple[int, int, int] = "small",
                   classes: dict[str, float] | None = None, dead_ccd_rate: float = 0.05,
                   compress: bool = True, workers: int = 1, progress: bool = True,
                   every_class: bool = False, tile_rows: int = TILE_ROWS, site: str = DEFAULT_SITE) -> Path:
    """Write `n` exposures and their truth into `out_dir`; returns the manifest path.

    `every_class` makes the first exposures one of each class with a positive weight, so a short
    demo night is guaranteed to show them all. `site` names the camera and sky (skyqa.simulator.site);
    a named `size` is that camera's.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    get_site(site).for_exposure(0).geometry(size)  # fail early on a bad site or size (size names: every camera's)
    seeds = exposure_seeds(seed, n, site)
    forced = sorted(k for k, v in (classes or DEFAULT_CLASSES).items() if v > 0) if every_class else []
    labels = [forced[i] if i < len(forced) else None for i in range(n)]
    args = [(out_dir, seed, i, s, size, classes, dead_ccd_rate, compress, labels[i], tile_rows, site)
            for i, s in enumerate(seeds)]
    from tqdm import tqdm

    bar = tqdm(total=n, desc="simulate", unit="exp", disable=not progress)
    rows: list[dict[str, str]] = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for row in pool.map(simulate_one, *zip(*args, strict=True)):
                rows.append(row)
                bar.update()
    else:
        for a in args:
            rows.append(simulate_one(*a))
            bar.update()
    bar.close()
    manifest = out_dir / MANIFEST
    write_truth(manifest, rows)
    return manifest
