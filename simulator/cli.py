"""`skyqa simulate`: write a night of simulated exposures and its truth manifest (GalSim imported lazily)."""

from __future__ import annotations

import argparse
from pathlib import Path

from skyqa.simulator.site import SITES


def _classes(text: str) -> dict[str, float]:
    try:
        pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
        return {name.strip(): float(weight) for name, weight in pairs}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected Class=weight[,Class=weight...], got {text!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output directory (exposures + truth.csv)")
    parser.add_argument("--n", type=int, required=True, help="number of exposures")
    parser.add_argument("--seed", type=int, required=True, help="night seed (same seed, same pixels)")
    parser.add_argument("--size", default="small",
                        help="full (36 x 4612x2048), small (36 x 1024x512), tiny (4 x 512x512) or N,NY,NX; "
                             "a named size is the site's camera's (unseen: 24 x 2048x3072, 24 x 512x768, 4 x 384x640; "
                             "randomised: each exposure's drawn camera's, small 5-7 Mpix)")
    parser.add_argument("--site", default="cfht", choices=sorted(SITES),
                        help="camera and sky: cfht (the project's simulator), randomised (a camera and sky drawn "
                             "per exposure: the shipped models' archive) or unseen (the unseen-site benchmark: "
                             "nothing is trained or tuned on it)")
    parser.add_argument("--classes", type=_classes, default=None,
                        help="class weights, e.g. Good=0.5,BT=0.1,RBT=0.1,BSeeing=0.1,BadFocus=0.1,BGP=0.1")
    parser.add_argument("--dead-ccd-rate", type=float, default=0.05, help="fraction of exposures with a dead CCD")
    parser.add_argument("--no-compress", action="store_true", help="write plain .fits instead of RICE .fits.fz")
    parser.add_argument("--tile-rows", type=int, default=1,
                        help="rows per RICE tile: 1 as fpack writes (default); 32 writes ~3x faster")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--every-class", action="store_true", help="start the night with one exposure of each class")


def run(args: argparse.Namespace) -> int:
    from skyqa.simulator.night import simulate_night

    size: str | tuple[int, int, int] = args.size
    if "," in args.size:
        size = tuple(int(v) for v in args.size.split(","))  # type: ignore[assignment]
    manifest = simulate_night(args.out, n=args.n, seed=args.seed, size=size, classes=args.classes,
                              dead_ccd_rate=args.dead_ccd_rate, compress=not args.no_compress,
                              workers=args.workers, progress=not args.no_progress, every_class=args.every_class,
                              tile_rows=args.tile_rows, site=args.site)
    print(manifest)
    return 0
