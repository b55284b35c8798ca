"""make bench-web: server time of the night and exposure pages on the archive scale of bench-search.

The archive is bench-search's synthetic one (`fill_archive`: copies of a real classified night's verdicts with
histo-vectors drawn from its distribution), spread over nights of --per-night exposures and kept in an SQLite
file under --out, so a second run reuses it. Pages are requested in process (FastAPI TestClient: the handler,
SQL, search and template rendering, no network), after one warm-up request that loads the search index.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import date
from pathlib import Path

from fastapi.testclient import TestClient
from search import fill_archive, load_night, percentiles
from sqlalchemy import func, select
from tqdm import tqdm

from skyqa.service.archive.models import Exposure
from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.web.app import create_web_app, freeze_startup_heap

TARGET_P95_MS = 300


def build(url: str, args: argparse.Namespace) -> list[date]:
    archive = Archive(url)
    have = archive.counts()["exposures"]
    if have < args.n:
        night, vectors, _ = load_night(args.verdicts, args.truth)
        if have:
            raise SystemExit(f"{url} holds {have:,} exposures, not {args.n:,}: remove it to rebuild")
        t, c = time.perf_counter(), time.process_time()
        with tqdm(total=args.n, unit="exp", desc="archive") as bar:
            fill_archive(archive, night, vectors, args.n, per_night=args.per_night, progress=bar.update)
        wall = time.perf_counter() - t
        print(f"archive of {args.n:,} exposures built: {wall:.0f} s wall, {time.process_time() - c:.0f} s CPU "
              f"({args.n / wall:.0f} verdicts/s into SQLite)")
    with archive.engine.connect() as connection:
        nights = sorted(connection.scalars(select(Exposure.night).group_by(Exposure.night)).all())
        count = connection.scalar(select(func.count()).select_from(Exposure))
    print(f"archive: {count:,} exposures over {len(nights):,} nights ({url})")
    archive.close()
    return nights


def timed(client: TestClient, paths: list[str]) -> tuple[list[float], float]:
    seconds = []
    c = time.process_time()
    for path in paths:
        t = time.perf_counter()
        response = client.get(path)
        seconds.append(time.perf_counter() - t)
        assert response.status_code in (200, 204), (path, response.status_code)
    return seconds, (time.process_time() - c) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=Path, required=True, help="classify --json output of a labelled night")
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--per-night", type=int, default=400)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("out/bench-web"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"bench-web on {os.cpu_count()} CPUs; load average {os.getloadavg()} (shared machine: wall times include "
          "others' work; CPU seconds are this process's)")
    url = f"sqlite:///{args.out / f'archive-{args.n}.db'}"
    nights = build(url, args)
    settings = Settings(archive={"url": url}, previews={"location": args.out / "previews"})
    client = TestClient(create_web_app(settings))
    freeze_startup_heap()  # as `skyqa web` does
    t, c = time.perf_counter(), time.process_time()
    client.get("/exposures/s0-0")  # loads the search index from the archive (and builds the ANN index)
    print(f"warm-up (search index from the archive): {time.perf_counter() - t:.1f} s wall, "
          f"{time.process_time() - c:.1f} s CPU")
    rng = random.Random(0)
    full = [n for n in nights[:-1]]  # the last night may be partial
    chunks = max(1, args.n // 2000)
    pages = {
        "night page /nights/{date}": [f"/nights/{rng.choice(full)}" for _ in range(args.requests)],
        "night page filtered (label, band)": [f"/nights/{rng.choice(full)}?label=Good&label=BT&band=r"
                                              for _ in range(args.requests)],
        "night page again (cached by stamp)": [f"/nights/{full[0]}"] * args.requests,
        "night live poll, nothing new (204)": [],
        "exposure page /exposures/{id}": [f"/exposures/s{rng.randrange(chunks)}-{rng.randrange(2000)}"
                                          for _ in range(args.requests)],
    }
    live = client.get(f"/nights/{full[0]}/live").text.split('data-stamp="')[1].split('"')[0]
    pages["night live poll, nothing new (204)"] = [f"/nights/{full[0]}/live?stamp={live}"] * args.requests
    for name, paths in pages.items():
        timed(client, paths[:3])  # templates compiled, caches warm
        seconds, cpu = timed(client, paths)
        p95 = sorted(seconds)[int(0.95 * (len(seconds) - 1))] * 1000
        verdict = "" if "poll" in name or "filtered" in name or "again" in name else (
            f"  target p95 <= {TARGET_P95_MS} ms: {'met' if p95 <= TARGET_P95_MS else 'NOT met'}")
        print(f"{name:<38} {len(paths)} requests: {percentiles(seconds)}, {cpu * 1000:.1f} ms CPU each{verdict}")


if __name__ == "__main__":
    main()
