"""The search library on a SQLite archive: similar (exact and ANN), content, filters, pagination, history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skyqa.cli import main
from skyqa.service.archive.store import Archive
from skyqa.service.labels import Label
from skyqa.service.search.filters import Filters, Page
from skyqa.service.search.index import IndexConfig, VectorStore
from skyqa.service.search.library import NotFound, Search
from skyqa.service.search.representation import embed, fractions
from tests.verdict_factory import make_verdict, random_histovectors

LABELS = [Label.GOOD, Label.BT, Label.RBT, Label.BSEEING]


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Search, np.ndarray, np.ndarray, str]:
    vectors, cluster = random_histovectors(60, seed=3)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    archive = Archive(url)
    archive.write([make_verdict(f"e{i:03d}", v, LABELS[c], minute=i, distance=float(i), band="gr"[i % 2],
                                fwhm=0.5 + i / 100, cell=(c, 0)) for i, (v, c) in enumerate(zip(vectors, cluster))])
    return Search(archive), vectors, cluster, url


def test_similar_returns_the_exact_nearest_neighbours_without_the_query(filled) -> None:  # noqa: ANN001
    search, vectors, cluster, _ = filled
    hits = search.similar_to_exposure("e007", k=5)
    emb = embed(fractions(vectors))
    d = ((emb - emb[7]) ** 2).sum(axis=1)
    got = [int(h.exposure_id[1:]) for h in hits]
    assert 7 not in got and len(set(got)) == 5
    # The store keeps fractions in 16-bit fixed point: the 5 nearest up to near-ties, with their distances.
    assert d[got] == pytest.approx(np.sort(d)[1:6], rel=1e-2)
    assert [h.score for h in hits] == pytest.approx(d[got], rel=1e-2)
    assert {h.label for h in hits} == {LABELS[cluster[7]]}  # clusters separate cleanly


def test_similar_with_filters_and_unknown_ids(filled) -> None:  # noqa: ANN001
    search, *_ = filled
    hits = search.similar_to_exposure("e007", k=3, filters=Filters(band="g"))
    assert len(hits) == 3 and all(h.metadata.filter.startswith("g") for h in hits)
    with pytest.raises(NotFound):
        search.similar_to_exposure("nope'; DROP TABLE verdicts; --", k=3)
    assert search.archive.counts()["verdicts"] == 60


def test_content_ranks_by_fraction_of_sources_in_the_nodes(filled) -> None:  # noqa: ANN001
    search, vectors, _, _ = filled
    nodes = list(np.argsort(-vectors[0])[:3])
    share = fractions(vectors)[:, nodes].sum(axis=1)
    page = search.content(nodes, 0.1, None, Page(limit=100))
    assert [h.exposure_id for h in page] == [f"e{i:03d}" for i in np.argsort(-share, kind="stable") if share[i] >= 0.1]
    assert [h.score for h in page] == pytest.approx(sorted(share[share >= 0.1], reverse=True), abs=2e-3)
    second = search.content(nodes, 0.1, None, Page(limit=2, offset=2))
    assert [h.exposure_id for h in second] == [h.exposure_id for h in page[2:4]]


def test_list_filters_and_orders(filled) -> None:  # noqa: ANN001
    search, _, cluster, _ = filled
    novel = search.list(Filters(label=[Label.BT]), Page(limit=3, order="novelty"))
    expected = [f"e{i:03d}" for i in range(59, -1, -1) if LABELS[cluster[i]] is Label.BT][:3]
    assert [h.exposure_id for h in novel] == expected
    narrow = search.list(Filters(fwhm_arcsec_min=0.6, fwhm_arcsec_max=0.7, band="r"), Page(limit=100, order="exposure"))
    assert [h.exposure_id for h in narrow] == [f"e{i:03d}" for i in range(10, 21) if i % 2 == 1]
    assert len(search.list(Filters(cell=(0, 0)), Page(limit=500))) == int((cluster == 0).sum())


def test_table_rows_are_list_rows_with_the_column_metrics(filled) -> None:  # noqa: ANN001
    """`table` (the night page's read: columns only) gives `list`'s hits, metrics limited to the archived columns."""
    search, _, _, _ = filled
    search.archive.write([make_verdict("new", random_histovectors(1, seed=5)[0][0], models=("2", "2"))])
    for filters, page in ((None, Page(limit=500, order="time")), (Filters(label=[Label.BT], band="g"), Page(limit=7)),
                          (Filters(fwhm_arcsec_min=0.6), Page(limit=5, offset=3, order="novelty"))):
        listed, table = search.list(filters, page), search.table(filters, page)
        assert [h.exposure_id for h in table] == [h.exposure_id for h in listed] and table
        for row, hit in zip(table, listed):
            assert row.model_dump(exclude={"metrics"}) == hit.model_dump(exclude={"metrics"})
            assert row.metrics.model_dump(exclude_none=True) == hit.metrics.model_dump(
                exclude_none=True, exclude={"detections_per_ccd", "exptime_s"})
            assert row.metrics.fwhm_arcsec is not None


def test_new_verdicts_are_searchable_and_superseded_ones_are_not(filled) -> None:  # noqa: ANN001
    search, vectors, _, _ = filled
    assert search.similar_to_exposure("e001", k=1)[0].exposure_id != "new"
    search.archive.write([make_verdict("new", vectors[1])])
    assert search.similar_to_exposure("e001", k=1)[0].exposure_id == "new"
    search.archive.write([make_verdict("new", vectors[30], models=("2", "2"))])  # reprocessed: new latest
    hits = search.similar_to_exposure("e001", k=60)
    assert [h.exposure_id for h in hits].count("new") == 1
    assert next(h for h in hits if h.exposure_id == "new").models == {"desom1": "2", "desom2": "2"}


def test_ann_index_agrees_with_brute_force() -> None:
    vectors, _ = random_histovectors(3000, seed=5, clusters=30)
    store = VectorStore(config=IndexConfig(ann_min_vectors=2000, nlist=32, nprobe=8, train_size=2000))
    store.add(np.arange(1, 2001), fractions(vectors[:2000]))
    assert store.uses_ann
    store.add(np.arange(2001, 3001), fractions(vectors[2000:]))  # kept current after the build
    queries = embed(fractions(vectors[::100]))
    recall = np.mean([len(set(store.nearest(q, 20)[0]) & set(store.nearest_exact(q, 20)[0])) / 20 for q in queries])
    assert recall >= 0.9


def test_cli_prints_a_table_or_json_lines(filled, capsys) -> None:  # noqa: ANN001
    *_, url = filled
    assert main(["search", "--url", url, "similar", "e003", "--k", "4", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["search", "--url", url, "content", "--nodes", "0-624", "--min-fraction", "0.99", "--limit", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("exposure") and len(out) == 6
    assert main(["search", "--url", url, "list", "--label", "BT", "--fwhm-arcsec-min", "2", "--fwhm-arcsec-max", "1"]) == 2
    assert "fwhm_arcsec_min > fwhm_arcsec_max" in capsys.readouterr().err
    assert main(["search", "--url", url, "similar", "missing", "--k", "3"]) == 1
    assert main(["search", "--url", url, "similar", "e003", "--k", "100000"]) == 2
