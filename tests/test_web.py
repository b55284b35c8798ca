"""The web pages over plain HTTP (FastAPI TestClient): content, live updates, who may curate and publish, CSRF."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from skyqa.cli import main
from skyqa.service.archive.store import Archive
from skyqa.service.config import WebConfig
from skyqa.service.curation.edits import list_edits
from skyqa.service.labels import Label, LabelMap
from skyqa.service.modelrepo import versions
from skyqa.service.previews.store import PreviewStore
from skyqa.service.web.app import create_web_app
from skyqa.service.web.auth import verify_password
from skyqa.service.web.png import grey_png
from tests.verdict_factory import make_verdict, random_histovectors
from tests.web_fixtures import NIGHT, OPERATOR, PASSWORD, csrf_of, web_settings


@pytest.fixture
def settings(tmp_path: Path):  # noqa: ANN201
    return web_settings(tmp_path)


@pytest.fixture
def client(settings) -> TestClient:  # noqa: ANN001
    return TestClient(create_web_app(settings))


def log_in(client: TestClient, password: str = PASSWORD) -> int:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "user": OPERATOR, "password": password, "next": "/maps"},
                       follow_redirects=False).status_code


def test_night_page_counts_filters_and_charts(client: TestClient) -> None:
    page = client.get(f"/nights/{NIGHT}").text
    assert 'id="total">30<' in page and page.count('class="hit"') == 30
    assert page.count("<circle") == 3 * 30  # FWHM, elongation and background trends, one mark per exposure
    only = client.get(f"/nights/{NIGHT}", params={"label": "Good", "band": "g"}).text
    rows = only.count('class="hit"')
    assert 0 < rows < 30 and 'id="total">30<' in only  # the table is filtered, the night's counts are not
    assert client.get("/nights/2026-13-01").status_code == 422
    assert 'id="total">0<' in client.get("/").text  # tonight: nothing archived in the test archive


def test_live_part_answers_204_until_a_verdict_lands(client: TestClient, settings) -> None:  # noqa: ANN001
    live = client.get(f"/nights/{NIGHT}/live")
    stamp = live.text.split('data-stamp="')[1].split('"')[0]
    assert client.get(f"/nights/{NIGHT}/live", params={"stamp": stamp}).status_code == 204
    vector, _ = random_histovectors(1, seed=9)
    Archive(settings.archive.url).write([make_verdict("late1", vector[0], Label.RBT, minute=400)])
    fresh = client.get(f"/nights/{NIGHT}/live", params={"stamp": stamp})
    assert fresh.status_code == 200 and "late1" in fresh.text and 'id="total">31<' in fresh.text


def test_night_page_is_rendered_once_per_stamp(client: TestClient, settings) -> None:  # noqa: ANN001
    """Reloads share one rendering of the live part until a verdict lands; then the page shows it at once."""
    first = client.get(f"/nights/{NIGHT}").text
    assert client.get(f"/nights/{NIGHT}").text == first
    assert client.app.state.live_parts.cache_info().hits == 1
    filtered = client.get(f"/nights/{NIGHT}", params={"label": "Good"}).text  # its own entry, not the night's
    assert filtered.count('class="hit"') < first.count('class="hit"')
    vector, _ = random_histovectors(1, seed=11)
    Archive(settings.archive.url).write([make_verdict("late2", vector[0], Label.RBT, minute=401)])
    again = client.get(f"/nights/{NIGHT}").text
    assert 'data-exposure="late2"' in again and 'id="total">31<' in again


def test_a_verdict_reprocessed_by_the_same_models_moves_the_stamp(client: TestClient, settings) -> None:  # noqa: ANN001
    vector, _ = random_histovectors(1, seed=12)
    archive = Archive(settings.archive.url)
    archive.write([make_verdict("again1", vector[0], Label.RBT, minute=402)])
    stamp = client.get(f"/nights/{NIGHT}/live").text.split('data-stamp="')[1].split('"')[0]
    archive.write([make_verdict("again1", vector[0], Label.GOOD, minute=402)])  # same exposure, same models
    fresh = client.get(f"/nights/{NIGHT}/live", params={"stamp": stamp})
    assert fresh.status_code == 200
    row = fresh.text.split('data-exposure="again1"')[1].split("</tr>")[0]
    assert "Good" in row and "RBT" not in row


def test_exposure_page_density_map_and_similar(client: TestClient) -> None:
    page = client.get("/exposures/e03").text
    assert "e03" in page and 'aria-label="25 x 25 density map"' in page and "no preview" in page
    similar = page.split('id="similar"')[1]
    assert similar.count('class="hit"') == 8 and 'data-exposure="e03"' not in similar
    assert client.get("/exposures/nope").status_code == 404


def test_previews_are_served_and_shown_where_made(client: TestClient, settings) -> None:  # noqa: ANN001
    png = grey_png(np.full((8, 8), 128, np.uint8))
    PreviewStore(settings.previews.location).put("e03", png, "png")
    got = client.get("/previews/e03")
    assert (got.status_code, got.headers["content-type"], got.content) == (200, "image/png", png)
    assert '<img class="preview" src="/previews/e03"' in client.get("/exposures/e03").text
    assert client.get("/previews/e04").status_code == 404
    assert client.get("/previews/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_maps_node_search_and_cell_gallery(client: TestClient) -> None:
    maps = client.get("/maps").text
    assert maps.count('class="node"') == 625 and 'id="cell-3-3"' in maps and "Log in</a> to publish" in maps
    found = client.get("/maps", params={"nodes": list(range(625)), "min_fraction": 0.5}).text
    assert found.split('id="results"')[1].count('class="hit"') == 30  # every source is in some node
    assert client.get("/maps", params={"nodes": 625}).status_code == 422
    cell = client.get("/cells/1/1").text
    assert 'aria-label="25 x 25 density map"' in cell and "to relabel this cell" in cell
    assert client.get("/cells/4/0").status_code == 404  # the tiny map is 4 x 4


def test_viewer_cannot_curate_or_publish_and_csrf_is_checked(client: TestClient, settings) -> None:  # noqa: ANN001
    repo = settings.models.repository
    assert client.post("/publish", data={"note": "x"}).status_code == 403  # no CSRF token at all
    token = csrf_of(client.get("/login").text)
    assert client.post("/publish", data={"csrf": token}).status_code == 401  # a token but no login
    assert client.post("/cells/1/1/label", data={"csrf": token, "label": "BT"}).status_code == 401
    assert log_in(client, "wrong") == 401
    assert log_in(client) == 303
    assert client.post("/cells/1/1/label", data={"csrf": "forged", "label": "BT"}).status_code == 403
    other = TestClient(client.app)  # another browser's token is not this session's
    assert client.post("/publish", data={"csrf": csrf_of(other.get("/login").text)}).status_code == 403
    assert list_edits(Archive(settings.archive.url)) == [] and versions(repo, "desom2") == [1]


def test_operator_relabels_and_publishes(client: TestClient, settings) -> None:  # noqa: ANN001
    assert log_in(client) == 303
    token = csrf_of(client.get("/cells/1/1").text)  # a new session after login: the token of this one
    done = client.post("/cells/1/1/label", data={"csrf": token, "label": "BadFocus", "note": "donuts"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/cells/1/1"
    [edit] = list_edits(Archive(settings.archive.url))
    assert (edit.cell, edit.label, edit.user, edit.note) == (5, Label.BADFOCUS, OPERATOR, "donuts")
    published = client.post("/publish", data={"csrf": token, "note": "night review"}, follow_redirects=False)
    assert published.headers["location"] == "/maps?published=2"
    labels = LabelMap.load(settings.models.repository / "desom2" / "2" / "labels.json")
    assert labels.label_of(5) is Label.BADFOCUS and labels.cells[5].user == OPERATOR
    assert "BadFocus" in client.get("/cells/1/1").text.split('id="cell-label"')[1][:200]
    assert client.post("/publish", data={"csrf": token}).status_code == 409  # nothing pending any more


def test_trusted_proxy_header_names_the_user(tmp_path: Path) -> None:
    settings = web_settings(tmp_path, exposures=3, trusted_user_header="X-Remote-User")
    client = TestClient(create_web_app(settings))
    assert "to publish" in client.get("/maps").text  # without the header: a viewer
    token = csrf_of(client.get("/maps", headers={"X-Remote-User": "bo"}).text)
    sent = client.post("/cells/0/1/label", data={"csrf": token, "label": "BT"}, headers={"X-Remote-User": "bo"},
                       follow_redirects=False)
    assert sent.status_code == 303 and list_edits(Archive(settings.archive.url))[0].user == "bo"


def test_hash_password_command_makes_a_hash_the_login_accepts(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main(["web", "--hash-password"]) == 0
    stored = capsys.readouterr().out.strip()
    assert stored.startswith("$argon2id$")
    config = WebConfig(users={"bo": stored})
    assert verify_password(config, "bo", "s3cret") and not verify_password(config, "bo", "secret")
    assert not verify_password(config, "nobody", "s3cret")
