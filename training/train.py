"""Iteration-based DESOM training (one random minibatch per step, T decayed per step) and BMU lookup."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import keras
from keras import ops

from skyqa.training.desom import DESOM


def random_batches(x: np.ndarray, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray]]:
    """Endless minibatches walking fresh permutations of ``x`` (every sample seen once per pass)."""
    x = np.asarray(x, dtype="float32")
    batch_size = min(int(batch_size), len(x))
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            yield (x[order[start : start + batch_size]],)


def train_desom(
    model: DESOM,
    data: np.ndarray | Iterable[np.ndarray],
    iterations: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    callbacks: list[keras.callbacks.Callback] | None = None,
    progress: bool = True,
    steps_per_epoch: int = 1000,
) -> keras.callbacks.History:
    """Run ``iterations`` joint steps (default: the rest of the model's T schedule) with ``model.fit``.

    ``data`` is an array (random minibatches are sampled from it) or an iterator yielding batches.
    An "epoch" is only a logging unit of ``steps_per_epoch`` steps; a reloaded model resumes its schedule.
    """
    keras.utils.set_random_seed(seed)
    done = int(ops.convert_to_numpy(model.step))
    if iterations is None:
        iterations = max(model.iterations - done, 0)
    if iterations <= 0:
        return keras.callbacks.History()
    spe = min(steps_per_epoch, iterations)
    full, rest = divmod(iterations, spe)
    # One generator shared by both fit calls: Keras keeps consuming it across epochs.
    if isinstance(data, np.ndarray):
        batches = random_batches(data, batch_size, seed)
    else:
        batches = ((np.asarray(b, dtype="float32"),) for b in data)
    verbose = 1 if progress else 0
    history = model.fit(batches, shuffle=False, epochs=full, steps_per_epoch=spe,
                        callbacks=callbacks, verbose=verbose)
    if rest:
        tail = model.fit(batches, shuffle=False, initial_epoch=full, epochs=full + 1, steps_per_epoch=rest,
                         callbacks=callbacks, verbose=verbose)
        for key, values in tail.history.items():
            history.history.setdefault(key, []).extend(values)
    return history


def predict_bmu(model: DESOM, x: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(bmu int64 (N,), squared latent distance to it float32 (N,)); the decoder is not run."""
    bmus, dists = [], []
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start : start + batch_size], dtype="float32")
        d = ops.convert_to_numpy(model.som(model.encoder(xb, training=False)))
        bmus.append(d.argmin(axis=1))
        dists.append(d.min(axis=1))
    if not bmus:
        return np.zeros(0, "int64"), np.zeros(0, "float32")
    return np.concatenate(bmus).astype("int64"), np.concatenate(dists).astype("float32")
