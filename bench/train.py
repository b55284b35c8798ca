"""DESOM-1 training throughput on this machine: our compiled step vs a reference-style host loop.

Reference style (public DESOM code, Forest et al.): per batch ``model.predict`` for the BMUs, the
neighbourhood weights computed in NumPy on the host, then ``train_on_batch(x, [x, w])``.
Ours: one compiled step (``DESOM.compute_loss``) per batch through ``model.fit``.

Per-step medians with the variants interleaved step by step, so load from other processes hits all alike.
Usage: TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/train.py [--steps 4 --warmup 2 --batch 256 --xla]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import keras
from keras import ops

from skyqa.training.architectures import build_desom1, conv_autoencoder
from skyqa.training.som import SOMLayer, manhattan_grid

PAPER_ITERATIONS = 100_000


def compiled_step(jit: bool):
    """Our DESOM-1; ``train_on_batch`` runs the same compiled train function that ``model.fit`` loops."""
    model = build_desom1(iterations=PAPER_ITERATIONS, jit_compile=jit)

    def setup(x: np.ndarray) -> None:
        model.init_prototypes(x[:1024], seed=0)

    def step(xb: np.ndarray, it: int) -> None:
        model.train_on_batch(xb)

    return setup, step


def reference_step():
    """Forest-style: AE + SOM outputs, loss [mse, som_loss] with weights fed as the SOM target."""
    encoder, decoder = conv_autoencoder()
    inputs = keras.Input((32, 32, 1))
    z = encoder(inputs)
    model = keras.Model(inputs, [decoder(z), SOMLayer((25, 25), name="som")(z)])

    def som_loss(weights, distances):
        return ops.mean(ops.sum(weights * distances, axis=1))

    model.compile(optimizer="adam", loss=["mse", som_loss], loss_weights=[1.0, 0.0075])
    grid = manhattan_grid((25, 25))
    t_max, t_min = 10.0, 0.5

    def setup(x: np.ndarray) -> None:
        model.get_layer("som").prototypes.assign(encoder.predict(x[:625], verbose=0))

    def step(xb: np.ndarray, it: int) -> None:
        _, d = model.predict(xb, batch_size=len(xb), verbose=0)
        t = t_max * (t_min / t_max) ** (it / PAPER_ITERATIONS)
        w = np.exp(-grid[d.argmin(axis=1)] ** 2 / t**2)
        model.train_on_batch(xb, [xb, w])

    return setup, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--xla", action="store_true", help="also time our step under XLA (slower on CPU)")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 32, 32, 1), dtype=np.float32)
    variants = {"reference loop (predict + numpy w + train_on_batch)": reference_step(),
                "compiled step, no XLA": compiled_step(jit=False)}
    if args.xla:
        variants["compiled step, XLA"] = compiled_step(jit=True)
    for setup, _ in variants.values():
        setup(x)
    print(f"backend {keras.backend.backend()}, batch {args.batch}, {args.steps} timed steps per variant "
          f"after {args.warmup} warm-up, variants interleaved step by step (the CPU is shared)")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for it in range(args.warmup + args.steps):
        xb = x[rng.integers(0, len(x), args.batch)]
        for name, (_, step) in variants.items():
            start = time.perf_counter()
            step(xb, it)
            if it >= args.warmup:
                times[name].append(time.perf_counter() - start)
    rates = {name: args.batch / float(np.median(t)) for name, t in times.items()}
    ref = next(iter(rates.values()))
    for name, rate in rates.items():
        hours = PAPER_ITERATIONS * args.batch / rate / 3600
        print(f"{name:<52}: {rate:7.1f} samples/s  {rate / ref:5.2f}x reference  "
              f"{PAPER_ITERATIONS:,} it. at batch {args.batch}: {hours:6.1f} h")


if __name__ == "__main__":
    main()
