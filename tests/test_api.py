"""The HTTP API (FastAPI TestClient on a SQLite archive): endpoints, 404s, 422s, limits, the OpenAPI schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from skyqa.service.api.app import create_app
from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.labels import Label
from tests.verdict_factory import make_verdict, random_histovectors

LABELS = [Label.GOOD, Label.BT, Label.RBT]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    vectors, cluster = random_histovectors(30, seed=4, clusters=3)
    settings = Settings(archive={"url": f"sqlite:///{tmp_path / 'a.db'}"})
    Archive(settings.archive.url).write([
        make_verdict(f"e{i:02d}", v, LABELS[c], minute=10 * i, cell=(c, 1), fwhm=0.6 + 0.01 * i, distance=i / 10)
        for i, (v, c) in enumerate(zip(vectors, cluster))])
    client = TestClient(create_app(settings))
    client.vectors = vectors  # type: ignore[attr-defined]
    return client


def test_exposures_list_one_and_404(client: TestClient) -> None:
    page = client.get("/exposures", params={"limit": 5, "order": "novelty", "label": ["Good", "BT"]}).json()
    assert len(page) == 5 and all(h["label"] in ("Good", "BT") for h in page)
    assert [h["distance"] for h in page] == sorted((h["distance"] for h in page), reverse=True)
    one = client.get("/exposures/e03").json()
    assert one["verdict"]["exposure_id"] == "e03" and len(one["history"]) == 1
    assert one["verdict"]["histovector"] == client.vectors[3].tolist()
    assert client.get("/exposures/e99").status_code == 404
    assert client.get("/exposures/x'%20OR%201=1--").status_code == 404


def test_search_endpoints(client: TestClient) -> None:
    similar = client.get("/search/similar", params={"exposure_id": "e00", "k": 4}).json()
    assert len(similar) == 4 and "e00" not in {h["exposure_id"] for h in similar}
    assert client.get("/search/similar", params={"exposure_id": "nope", "k": 4}).status_code == 404
    posted = client.post("/search/similar", json={"histovector": client.vectors[0].tolist(), "k": 1}).json()
    assert posted[0]["exposure_id"] == "e00" and posted[0]["score"] == pytest.approx(0, abs=1e-3)
    nodes = [int(n) for n in np.argsort(-client.vectors[0])[:5]]
    content = client.get("/search/content", params={"nodes": nodes, "min_fraction": 0.05, "limit": 3}).json()
    scores = [h["score"] for h in content]
    assert len(content) == 3 and scores == sorted(scores, reverse=True) and min(scores) >= 0.05


def test_night_summary_and_cells(client: TestClient) -> None:
    night = client.get("/nights/2026-11-22").json()
    assert night["exposures"] == 30 and sum(night["labels"].values()) == 30
    assert night["usable_fraction"] == pytest.approx(night["labels"].get("Good", 0) / 30)
    assert [h["hour_utc"] for h in night["hours"]] == [6, 7, 8, 9, 10]
    assert set(night["hours"][0]["fwhm_arcsec"]) == {"p10", "p50", "p90"}
    assert client.get("/nights/2020-01-01").status_code == 404
    members = client.get("/cells/1/1/exposures", params={"limit": 500}).json()
    assert members and all(h["cell"] == [1, 1] and h["label"] == "BT" for h in members)


@pytest.mark.parametrize("url, params", [
    ("/exposures", {"limit": 501}),
    ("/exposures", {"offset": -1}),
    ("/exposures", {"label": "Great"}),
    ("/exposures", {"order": "random"}),
    ("/exposures", {"fwhm_arcsec_min": 2, "fwhm_arcsec_max": 1}),
    ("/exposures", {"cell_x": 1}),
    ("/exposures", {"night": "yesterday"}),
    ("/search/similar", {"exposure_id": "e00", "k": 201}),
    ("/search/similar", {"exposure_id": "e00", "k": 0}),
    ("/search/similar", {}),
    ("/search/content", {"nodes": 625}),
    ("/search/content", {}),
    ("/search/content", {"nodes": 3, "min_fraction": 1.5}),
    ("/cells/1/100/exposures", {}),
    ("/nights/2026-13-40", {}),
])
def test_bad_parameters_are_422(client: TestClient, url: str, params: dict) -> None:
    assert client.get(url, params=params).status_code == 422


def test_bad_vector_body_is_422(client: TestClient) -> None:
    assert client.post("/search/similar", json={"histovector": [1] * 624}).status_code == 422
    assert client.post("/search/similar", json={"histovector": [-1] * 625}).status_code == 422


def test_openapi_schema_lists_every_area(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/exposures", "/exposures/{exposure_id}", "/search/similar", "/search/content", "/nights/{night}",
            "/cells/{cell_x}/{cell_y}/exposures"} <= set(paths)
