"""Streaming minibatches from the shards: bounded memory, full coverage per pass, deterministic per seed."""

import json
from pathlib import Path

import numpy as np
import pytest

from skyqa.training import dataset
from skyqa.training.dataset import MANIFEST, Entry, stream_batches

SHARDS, PER_SHARD = 6, 20


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """Six shards of 20 cutouts; pixel (0,0) tags the shard and pixel (0,1) the cutout within it."""
    lines = []
    for s in range(SHARDS):
        cutouts = np.zeros((PER_SHARD, 32, 32), np.float16)
        cutouts[:, 0, 0] = s / 16
        cutouts[:, 0, 1] = np.arange(PER_SHARD) / 32
        np.savez(tmp_path / f"shard-{s:05d}.npz", cutouts=cutouts, offsets=np.array([0, PER_SHARD]))
        entry = Entry(f"e{s}", f"/x/e{s}.fits.fz", f"shard-{s:05d}.npz", 0, PER_SHARD, 100.0, 4, [])
        lines.append(json.dumps(entry.__dict__))
    (tmp_path / MANIFEST).write_text("\n".join(lines) + "\n")
    return tmp_path


def ids(batch: np.ndarray) -> list[tuple[int, int]]:
    return [(round(float(c[0, 0, 0]) * 16), round(float(c[0, 1, 0]) * 32)) for c in batch]


def take(iterator, n: int) -> list[np.ndarray]:
    return [next(iterator) for _ in range(n)]


def test_batches_cover_every_cutout_once_per_pass_loading_few_shards(shards: Path, monkeypatch) -> None:
    loads: list[str] = []
    real = dataset.shard_cutouts
    monkeypatch.setattr(dataset, "shard_cutouts", lambda root, shard: loads.append(shard) or real(root, shard))
    stream = stream_batches(shards, batch_size=8, seed=1, buffer_shards=2)
    loaded_at_yield = []
    batches = []
    for _ in range(SHARDS * PER_SHARD // 8):  # one pass
        batches.append(next(stream))
        loaded_at_yield.append(len(loads))
    assert all(b.shape == (8, 32, 32, 1) and b.dtype == np.float32 for b in batches)
    assert loaded_at_yield[0] == 2  # the first batch needed two shards, not the dataset
    assert set(loaded_at_yield) == {2, 4, 6}  # shards come in groups of buffer_shards
    assert sorted(loads) == sorted(f"shard-{s:05d}.npz" for s in range(SHARDS))  # each shard once per pass
    seen = [i for b in batches for i in ids(b)]
    assert sorted(seen) == [(s, i) for s in range(SHARDS) for i in range(PER_SHARD)]
    assert len({s for s, _ in ids(batches[0])}) == 2  # a batch mixes the buffered shards
    next(stream)
    assert len(loads) == SHARDS + 2  # the second pass starts over, again two shards at a time


def test_stream_is_deterministic_per_seed_and_carries_remainders(shards: Path) -> None:
    first = take(stream_batches(shards, batch_size=12, seed=5, buffer_shards=2), 25)
    again = take(stream_batches(shards, batch_size=12, seed=5, buffer_shards=2), 25)
    other = take(stream_batches(shards, batch_size=12, seed=6, buffer_shards=2), 25)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(b.shape == (12, 32, 32, 1) for b in first)
    seen = [i for b in first[:10] for i in ids(b)]  # 40-cutout groups leave 4 over: carried, never lost
    assert len(set(seen)) == len(seen) == 120


def test_too_small_a_dataset_is_refused(shards: Path) -> None:
    with pytest.raises(ValueError, match="fewer cutouts"):
        next(stream_batches(shards, batch_size=SHARDS * PER_SHARD + 1, seed=0))
