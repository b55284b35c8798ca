"""make bench-search: precision@k of the search representation, and search/ingest speed at archive scale.

1. precision@k: on a labelled simulated night (verdicts from `classify --json` + truth.csv), how often an
   exposure's k nearest neighbours share its true label, for each candidate representation.
2. Scale: N synthetic histo-vectors drawn from the night's distribution (a mixture with one component per real
   exposure: its node fractions, Dirichlet-perturbed, times a log-normally scattered W, Poisson counts), loaded
   into the search VectorStore: index build time and memory, p50/p95 latency of k=20 similar and content
   queries, recall@20 of the index against brute force.
3. Ingest: verdicts/s through the archive writer's upsert into SQLite and into a throw-away PostgreSQL server
   (scripts/postgres.sh), in the consumer's batches and one at a time (the dir daemon).
4. End to end: the search library (SQL included) on a SQLite archive of --db-rows rows.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from skyqa import shipped_models
from skyqa.service.archive.store import Archive
from skyqa.service.modelrepo import resolve_version
from skyqa.service.pipeline.metadata import observing_night
from skyqa.service.pipeline.desom2_input import Desom2Input
from skyqa.service.search.filters import Page
from skyqa.service.search.index import IndexConfig, VectorStore
from skyqa.service.search.library import Search
from skyqa.service.search.representation import embed, fractions
from skyqa.service.verdict import Verdict

ROOT = Path(__file__).resolve().parents[1]
K = 20
SITE_UTC_OFFSET_H = -10.0  # the default site (CFHT)


def load_night(verdicts: Path, truth: Path) -> tuple[list[Verdict], np.ndarray, np.ndarray]:
    labels = {row["exposure_id"]: row["label"] for row in csv.DictReader(truth.open())}
    night = [Verdict.model_validate_json(line) for line in verdicts.read_text().splitlines() if line.strip()]
    return night, np.array([v.histovector for v in night], np.float64), np.array([labels[v.exposure_id] for v in night])


def precision_at_k(vectors: np.ndarray, labels: np.ndarray) -> None:
    _, desom2_dir = resolve_version(shipped_models(), "desom2", "latest")
    scaler = Desom2Input.load(desom2_dir / "scaler.json")  # the shipped 625-input version: bins only
    representations = {
        "raw counts": vectors,
        "node fractions": fractions(vectors),
        "sqrt fractions (Hellinger, chosen)": embed(fractions(vectors)),
        "DESOM-2 input (scaled, normalised)": scaler.transform(vectors),
    }
    ks = (1, 5, 10, K)
    print(f"precision@k on {len(labels)} labelled exposures (chance = {np.mean([np.mean(labels == l) ** 1 for l in labels]):.3f})")
    print(f"{'representation':<38}" + "".join(f"{'p@' + str(k):>8}" for k in ks))
    for name, x in representations.items():
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        order = np.argsort(d, axis=1, kind="stable")
        print(f"{name:<38}" + "".join(f"{np.mean(labels[order[:, :k]] == labels[:, None]):>8.3f}" for k in ks))


def synthetic(vectors: np.ndarray, n: int, seed: int, chunk: int = 50_000):
    """Yields (counts) chunks drawn from the mixture fitted to the night (see module docstring)."""
    rng = np.random.default_rng(seed)
    base = fractions(vectors).astype(np.float64)
    totals = vectors.sum(axis=1)
    live = np.flatnonzero(totals > 0)
    for lo in range(0, n, chunk):
        size = min(chunk, n - lo)
        pick = rng.choice(live, size)
        p = rng.gamma(500.0 * base[pick] + 1e-3)
        p /= p.sum(axis=1, keepdims=True)
        w = totals[pick] * rng.lognormal(0.0, 0.3, size)
        yield rng.poisson(p * w[:, None]).astype(np.int32), pick


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms"


def scale(vectors: np.ndarray, n: int, queries: int, seed: int) -> None:
    t, c = time.perf_counter(), time.process_time()
    store = VectorStore(config=IndexConfig(ann_min_vectors=n + 1))  # build explicitly, after loading
    for counts, _ in synthetic(vectors, n, seed):
        store.add(np.arange(len(store) + 1, len(store) + 1 + len(counts)), fractions(counts))
    print(f"\n{n:,} synthetic histo-vectors generated and loaded: {time.perf_counter() - t:.1f} s wall, "
          f"{time.process_time() - c:.1f} s CPU; fractions store {len(store) * store.dim * 2 / 2**20:.0f} MiB (16-bit fixed point)")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t, c = time.perf_counter(), time.process_time()
    store.build_ann()
    ann = store._ann
    print(f"index build (faiss IVF{store.config.nlist},SQ8, k-means on {store.config.train_size:,} x {store.config.train_iterations} rounds, + add): "
          f"{time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU; index memory "
          f"{(ann.ntotal * (ann.code_size + 8) + ann.nlist * ann.d * 4) / 2**20:.0f} MiB; process peak RSS "
          f"{max(rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 2**20:.2f} GiB")
    rng = np.random.default_rng(seed + 1)
    query_counts = next(synthetic(vectors, queries, seed + 2))[0]
    embedded = embed(fractions(query_counts))
    lat = []
    results = []
    for q in embedded:
        t = time.perf_counter()
        results.append(store.nearest(q, K)[0])
        lat.append(time.perf_counter() - t)
    print(f"similar k={K} ({queries} queries, index): {percentiles(lat)}")
    t, c = time.perf_counter(), time.process_time()
    exact, _ = store.nearest_exact(embedded, K)
    print(f"brute force k={K} for the same {queries} queries (batched numpy): {time.perf_counter() - t:.1f} s wall, "
          f"{time.process_time() - c:.1f} s CPU")
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(results, exact)])
    print(f"recall@{K} of the index against brute force: {recall:.4f} (nprobe {store.config.nprobe})")
    lat = []
    for _ in range(queries):
        nodes = rng.choice(625, int(rng.integers(3, 26)), replace=False).tolist()
        t = time.perf_counter()
        scores = store.content_scores(nodes)
        hits = np.flatnonzero(scores >= 0.2)
        hits[np.argsort(-scores[hits])[:50]]
        lat.append(time.perf_counter() - t)
    print(f"content (3-25 nodes, fraction >= 0.2, top 50; {queries} queries): {percentiles(lat)}")


def compare_indexes(vectors: np.ndarray, n: int, queries: int, seed: int) -> None:
    """The candidates on a subset: what justified IVF-SQ8 (build time and memory at 1M on 2 cores)."""
    import faiss

    data = np.concatenate([embed(fractions(c)) for c, _ in synthetic(vectors, n, seed + 5)])
    qs = embed(fractions(next(synthetic(vectors, queries, seed + 6))[0]))
    exact = VectorStore(config=IndexConfig(ann_min_vectors=n + 1))
    exact.add(np.arange(n), fractions(np.square(data)))
    truth, _ = exact.nearest_exact(qs, K)
    nlist = max(64, int(4 * np.sqrt(n)))
    candidates = {
        "faiss HNSW32 (float32)": lambda: faiss.IndexHNSWFlat(data.shape[1], 32),
        f"faiss IVF{nlist},Flat": lambda: faiss.IndexIVFFlat(faiss.IndexFlatL2(data.shape[1]), data.shape[1], nlist),
        f"faiss IVF{nlist},SQ8 (chosen)": lambda: faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatL2(data.shape[1]), data.shape[1], nlist, faiss.ScalarQuantizer.QT_8bit),
    }
    print(f"\nindex candidates on {n:,} synthetic vectors, {queries} queries, k={K}:")
    for name, make in candidates.items():
        index = make()
        t, c = time.perf_counter(), time.process_time()
        if not index.is_trained:
            index.train(data[np.random.default_rng(0).choice(n, min(n, 65_536), replace=False)])
        index.add(data)
        build_wall, build_cpu = time.perf_counter() - t, time.process_time() - c
        if hasattr(index, "nprobe"):
            index.nprobe = IndexConfig().nprobe
        lat, found = [], []
        for q in qs:
            t = time.perf_counter()
            found.append(index.search(q[None, :], K)[1][0])
            lat.append(time.perf_counter() - t)
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)])
        size = len(faiss.serialize_index(index)) / 2**20
        print(f"  {name:<28} build {build_wall:6.1f} s wall {build_cpu:6.1f} s CPU, {size:6.0f} MiB "
              f"({size * 1_000_000 / n / 1024:.2f} GiB at 1M), {percentiles(lat)}, recall@{K} {recall:.3f}")


def ingest(night: list[Verdict], url: str, name: str, n: int) -> None:
    rng = np.random.default_rng(0)
    docs = [night[int(rng.integers(len(night)))].model_copy(update={"exposure_id": f"{name}-{i}"}) for i in range(n)]
    archive = Archive(url)
    for batch, label in ((200, "batches of 200 (archive consume)"), (1, "one at a time (dir daemon)")):
        todo = docs if batch > 1 else [d.model_copy(update={"exposure_id": d.exposure_id + "-single"})
                                       for d in docs[: n // 5]]
        t, c = time.perf_counter(), time.process_time()
        for lo in range(0, len(todo), batch):
            archive.write(todo[lo: lo + batch], source="kafka")
        wall = time.perf_counter() - t
        print(f"ingest {name:<10} {label:<34} {len(todo) / wall:>8.0f} verdicts/s "
              f"({len(todo)} in {wall:.1f} s wall, {time.process_time() - c:.1f} s client CPU)")
    archive.close()


def fill_archive(archive: Archive, night: list[Verdict], vectors: np.ndarray, rows: int,
                 per_night: int | None = None, progress=None) -> None:  # noqa: ANN001 - a tqdm-like callable
    """`rows` synthetic exposures, `s<chunk>-<i>`, each a copy of a real verdict of the night (label, cell, metrics)
    with a synthetic histo-vector; with `per_night`, spread over consecutive nights of that many exposures each
    (one every 90 s from 20:00 at the site), as an archive of years of observing holds them."""
    start = datetime(2020, 1, 1, 6, 0, tzinfo=UTC)  # 20:00 at the site (UTC-10)
    done = 0
    for chunk, (counts, pick) in enumerate(synthetic(vectors, rows, 7, chunk=2000)):
        batch = []
        for i, (c, j) in enumerate(zip(counts, pick)):
            update: dict = {"exposure_id": f"s{chunk}-{i}", "histovector": c.tolist()}
            if per_night:
                n, k = divmod(done + i, per_night)
                when = start + timedelta(days=n, seconds=90 * k)
                update["metadata"] = night[j].metadata.model_copy(
                    update={"date_obs": when, "night": observing_night(when, SITE_UTC_OFFSET_H)})
            batch.append(night[j].model_copy(update=update))
        archive.write(batch, source="import")
        done += len(batch)
        if progress:
            progress(len(batch))


def end_to_end(night: list[Verdict], vectors: np.ndarray, rows: int, queries: int, tmp: Path) -> None:
    archive = Archive(f"sqlite:///{tmp / 'e2e.db'}")
    base = night[0]
    fill_archive(archive, night, vectors, rows)
    search = Search(archive)
    search.refresh()
    ids = [f"s0-{i}" for i in range(queries)]
    lat = []
    for exposure in ids:
        t = time.perf_counter()
        search.similar_to_exposure(exposure, K)
        lat.append(time.perf_counter() - t)
    print(f"\nsearch library on a {rows:,}-row SQLite archive (SQL included), similar k={K}: {percentiles(lat)}")
    lat = []
    for q in range(queries):
        t = time.perf_counter()
        search.content([q, q + 1, q + 25], 0.05, None, Page(limit=50))
        lat.append(time.perf_counter() - t)
    print(f"search library on a {rows:,}-row SQLite archive, content (3 nodes, top 50): {percentiles(lat)}")
    del base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=Path, required=True, help="classify --json output of a labelled night")
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest", type=int, default=5000)
    parser.add_argument("--db-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", type=int, default=100_000, help="vectors for the index comparison (0: skip)")
    args = parser.parse_args()
    print(f"bench-search on {__import__('os').cpu_count()} CPUs; load average {__import__('os').getloadavg()} "
          "(the machine is shared: wall times include others' work, CPU times are this process's)")
    night, vectors, labels = load_night(args.verdicts, args.truth)
    precision_at_k(vectors, labels)
    if args.compare:
        compare_indexes(vectors, args.compare, args.queries, args.seed)
    scale(vectors, args.n, args.queries, args.seed)
    with tempfile.TemporaryDirectory(prefix="skyqa-bench-search-") as tmp:
        ingest(night, f"sqlite:///{tmp}/ingest.db", "sqlite", args.ingest)
        pg = Path(tempfile.mkdtemp(prefix="skyqa-pg-"))
        port = str(_free_port())
        subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start", str(pg), port], check=True)
        try:
            ingest(night, f"postgresql+psycopg://skyqa@127.0.0.1:{port}/skyqa", "postgresql", args.ingest)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "stop", str(pg)], check=True)
            subprocess.run(["rm", "-rf", str(pg)], check=True)
        end_to_end(night, vectors, args.db_rows, min(args.queries, 100), Path(tmp))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
