"""`skyqa dataset build`: exposures -> sharded cutout datasets through the serving-side preprocessing.

A shard is one .npz (float16 cutouts of a few exposures + offsets); `manifest.jsonl` lists what was used.
The manifest line is written only after its shard is on disk, so an interrupted build resumes where it
stopped and never holds a half-written shard.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from tqdm import tqdm

from skyqa.service.config import Settings
from skyqa.service.pipeline.descriptor import FEATURES
from skyqa.service.pipeline.exposure import ExposureError
from skyqa.service.pipeline.metadata import instrument
from skyqa.service.pipeline.preprocess import PreparedExposure, prepare_exposure

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Entry:
    """One exposure in a dataset: where its cutouts live and what preprocessing found."""

    exposure_id: str
    file: str
    shard: str
    start: int
    stop: int
    weight: float
    n_ccds: int
    dead_ccds: list[str]
    metrics: dict = field(default_factory=dict)  # skyqa.service.verdict.PhysicalMetrics, for the background check
    descriptor: dict = field(default_factory=dict)  # skyqa.service.pipeline.descriptor: feature -> value (None: NaN)
    instrument: str | None = None  # INSTRUME: the calibration may be the instrument's own (skyqa.service.calibration)


def read_manifest(root: Path) -> list[Entry]:
    """The dataset's entries. A manifest written before entries recorded their instrument gets it from the file's
    primary header (under a millisecond each); a file no longer there leaves it unknown."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Entry(**row) if "instrument" in row else Entry(**row, instrument=_instrument(Path(row["file"])))
            for row in rows]


def _instrument(path: Path) -> str | None:
    try:
        header = fits.getheader(path, 0)
    except (OSError, ValueError):  # gone, unreadable or no FITS any more: the archive's instrument is unknown
        return None
    return instrument(header)


def _prepare(job: tuple[Path, Settings]) -> PreparedExposure | tuple[Path, str]:
    path, settings = job
    try:
        return prepare_exposure(path, settings)
    except ExposureError as error:
        return path, f"{error.reason}: {error}"


def build(files: Sequence[Path], root: Path, settings: Settings, workers: int, per_shard: int = 32) -> list[Entry]:
    """Adds every exposure of `files` not yet in the manifest; returns the whole manifest."""
    root.mkdir(parents=True, exist_ok=True)
    done = {entry.file for entry in read_manifest(root)}
    todo = [Path(f) for f in files if str(Path(f).resolve()) not in done]
    inline = settings.model_copy(update={"workers": 1})  # parallel over exposures, not CCDs
    shard_index = 1 + max((int(e.shard.removeprefix("shard-").removesuffix(".npz")) for e in read_manifest(root)),
                          default=-1)  # after the highest: a resumed build never overwrites a shard
    with ProcessPoolExecutor(max_workers=workers) as pool, tqdm(total=len(todo), desc="dataset", unit="exp") as bar:
        for start in range(0, len(todo), per_shard):
            chunk = todo[start : start + per_shard]
            results = list(pool.map(_prepare, [(path, inline) for path in chunk]))
            prepared = [r for r in results if isinstance(r, PreparedExposure)]
            for path, reason in (r for r in results if not isinstance(r, PreparedExposure)):
                tqdm.write(f"skipped {path}: {reason}")
            _write_shard(root, f"shard-{shard_index:05d}.npz", chunk, results, prepared)
            shard_index += 1
            bar.update(len(chunk))
    return read_manifest(root)


def _write_shard(
    root: Path, name: str, chunk: list[Path], results: list, prepared: list[PreparedExposure]
) -> None:
    files = {id(r): str(p.resolve()) for p, r in zip(chunk, results)}
    cutouts = [p.cutouts[..., 0].astype(np.float16) for p in prepared]
    offsets = np.cumsum([0] + [len(c) for c in cutouts])
    stacked = np.concatenate(cutouts) if cutouts else np.zeros((0, 32, 32), np.float16)
    tmp = root / f".{name}.tmp.npz"
    np.savez(tmp, cutouts=stacked, offsets=offsets)
    os.replace(tmp, root / name)
    with open(root / MANIFEST, "a") as manifest:
        for i, p in enumerate(prepared):
            entry = Entry(
                exposure_id=p.exposure_id,
                file=files[id(p)],
                shard=name,
                start=int(offsets[i]),
                stop=int(offsets[i + 1]),
                weight=float(p.weight),
                n_ccds=p.n_ccds,
                dead_ccds=list(p.dead_ccds),
                metrics=p.metrics.model_dump(),
                descriptor={f: None if math.isnan(v) else float(v) for f, v in zip(FEATURES, p.descriptor.tolist())},
                instrument=instrument(p.primary_header),
            )
            manifest.write(json.dumps(entry.__dict__) + "\n")


def descriptors(entries: Sequence[Entry]) -> np.ndarray:
    """(N, len(FEATURES)) background descriptors of the entries (NaN where not measured)."""
    missing = [e.exposure_id for e in entries if not e.descriptor]
    if missing:
        raise ValueError(f"{len(missing)} dataset entries (e.g. {missing[0]}) have no background descriptor: "
                         "the dataset was built before it existed; rebuild it with `skyqa dataset build`")
    return np.array([[np.nan if e.descriptor.get(f) is None else e.descriptor[f] for f in FEATURES]
                     for e in entries], np.float32).reshape(len(entries), len(FEATURES))


def shard_cutouts(root: Path, shard: str) -> np.ndarray:
    """All float16 cutouts (n, 32, 32) of one shard: the unit every reader loads at a time."""
    with np.load(Path(root) / shard) as data:
        return data["cutouts"]


def count_cutouts(root: Path) -> int:
    return sum(e.stop - e.start for e in read_manifest(root))


def iter_exposures(root: Path) -> Iterator[tuple[Entry, np.ndarray]]:
    """(entry, float32 cutouts (N,32,32,1)) per exposure, one shard in memory at a time."""
    by_shard: dict[str, list[Entry]] = {}
    for entry in read_manifest(root):
        by_shard.setdefault(entry.shard, []).append(entry)
    for shard, entries in by_shard.items():
        cutouts = shard_cutouts(root, shard)
        for entry in entries:
            yield entry, cutouts[entry.start : entry.stop, ..., None].astype(np.float32)


def sample_cutouts(root: Path, n: int, seed: int) -> np.ndarray:
    """A uniform random sample of n cutouts over the whole dataset, loading one shard at a time."""
    entries = read_manifest(root)
    total = sum(e.stop - e.start for e in entries)
    if total == 0:
        raise ValueError(f"{root}: dataset holds no cutouts")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(total, size=min(n, total), replace=False))
    out, base = [], 0
    for shard in dict.fromkeys(e.shard for e in entries):
        cutouts = shard_cutouts(root, shard)
        local = picks[(picks >= base) & (picks < base + len(cutouts))] - base
        out.append(cutouts[local])
        base += len(cutouts)
    sample = np.concatenate(out)[..., None].astype(np.float32)
    rng.shuffle(sample)
    return sample


def stream_batches(root: Path, batch_size: int, seed: int, buffer_shards: int = 4) -> Iterator[np.ndarray]:
    """Endless random float32 minibatches (B, 32, 32, 1) for datasets too big to hold in memory.

    Each pass visits the shards in a fresh seeded order, `buffer_shards` at a time: their cutouts are
    shuffled together (plus the fewer than B left over from the previous group) and cut into batches.
    Memory stays at about `buffer_shards` shards of float16 whatever the dataset size; every cutout is
    seen once per pass, and a shard holds whole exposures, so a buffer mixes ~buffer_shards x 32 exposures.
    """
    shards = list(dict.fromkeys(e.shard for e in read_manifest(root)))
    if count_cutouts(root) < batch_size:
        raise ValueError(f"{root}: fewer cutouts than one batch of {batch_size}")
    rng = np.random.default_rng(seed)
    rest = np.zeros((0, 32, 32), np.float16)
    while True:
        order = rng.permutation(len(shards))
        for start in range(0, len(order), buffer_shards):
            group = [shard_cutouts(root, shards[i]) for i in order[start : start + buffer_shards]]
            pool = np.concatenate([rest, *group])
            del group  # free the shard arrays before the shuffled copy
            pool = pool[rng.permutation(len(pool))]
            full = len(pool) - len(pool) % batch_size
            for b in range(0, full, batch_size):
                yield pool[b : b + batch_size, ..., None].astype(np.float32)
            rest = pool[full:]
