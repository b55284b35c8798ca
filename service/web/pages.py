"""The pages: GET routes render templates; the POST routes (login, curation, publishing) check CSRF and the user."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from skyqa.service.api.deps import get_search
from skyqa.service.curation.edits import draft, record_edit
from skyqa.service.curation.publish import NothingToPublish, publish_edits
from skyqa.service.config import Settings
from skyqa.service.labels import LABEL_COLOURS, Label
from skyqa.service.pipeline.metadata import observing_night
from skyqa.service.search.filters import Page
from skyqa.service.search.library import NotFound, Search
from skyqa.service.web import auth, views

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)
SearchDep = Annotated[Search, Depends(get_search)]
UserDep = Annotated[str, Depends(auth.require_user)]


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def page(request: Request, name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {
        "user": auth.current_user(request), "csrf": auth.csrf_token(request), "colours": LABEL_COLOURS,
        "labels": list(Label), "has_preview": request.app.state.previews.has, **context}, status_code=status_code)


def tonight(settings: Settings) -> date:
    return observing_night(datetime.now(UTC), settings.site.utc_offset_hours)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, s: SearchDep, label: Annotated[list[Label], Query()] = [],  # noqa: B006 - FastAPI
         band: str = "") -> HTMLResponse:
    return night(request, s, tonight(settings_of(request)), label, band)


@router.get("/nights/{night}", response_class=HTMLResponse)
def night(request: Request, s: SearchDep, night: date, label: Annotated[list[Label], Query()] = [],  # noqa: B006
          band: Annotated[str, Query(max_length=32)] = "") -> HTMLResponse:
    stamp = views.night_stamp(s, night)
    return page(request, "night.html", night=night, stamp=stamp, live=live_part(request, s, night, stamp, label, band),
                chosen=label, band=band, poll_ms=int(1000 * settings_of(request).web.live_poll_s))


@router.get("/nights/{night}/live", response_class=HTMLResponse)
def night_live(request: Request, s: SearchDep, night: date, stamp: str = "",
               label: Annotated[list[Label], Query()] = [],  # noqa: B006
               band: Annotated[str, Query(max_length=32)] = "") -> Response:
    """The night's changing part, or 204 while nothing new has been archived (the page polls this)."""
    now = views.night_stamp(s, night)
    if stamp == now:
        return Response(status_code=204)
    return HTMLResponse(live_part(request, s, night, now, label, band))


def live_part(request: Request, s: Search, night: date, stamp: str, label: list[Label], band: str) -> Markup:
    """The night's live part (counts, charts, table), rendered once per app, night, stamp and filters: reloads
    and every operator watching tonight share one rendering until the next verdict lands (the stamp moves)."""
    return request.app.state.live_parts(s, request.app.state.previews.has, night, stamp, tuple(label), band)


def render_live_part(s: Search, has_preview: Callable[[str], bool], night: date, stamp: str,
                     labels: tuple[Label, ...], band: str) -> Markup:
    view = views.night_view(s, night, list(labels), band, stamp)
    return Markup(templates.get_template("_night_live.html").render(view=view, colours=LABEL_COLOURS,
                                                                    has_preview=has_preview))


@router.get("/exposures/{exposure_id}", response_class=HTMLResponse)
def exposure(request: Request, s: SearchDep, exposure_id: str) -> HTMLResponse:
    try:
        view = views.exposure_view(s, exposure_id)
    except NotFound:
        return page(request, "message.html", 404, title="Not found", message=f"no archived exposure {exposure_id!r}")
    return page(request, "exposure.html", e=view, v=view["verdict"])


@router.get("/previews/{exposure_id}")
def preview(request: Request, exposure_id: str) -> Response:
    """The focal-plane preview made while the exposure was classified (skyqa.service.previews)."""
    found = request.app.state.previews.get(exposure_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no preview of {exposure_id!r}")
    return Response(found.data, media_type=found.media_type, headers={"Cache-Control": "max-age=300"})


@router.get("/maps", response_class=HTMLResponse)
def maps(request: Request, s: SearchDep,
         nodes: Annotated[list[Annotated[int, Query(ge=0, le=624)]], Query(max_length=625)] = [],  # noqa: B006
         min_fraction: Annotated[float, Query(ge=0.0, le=1.0)] = 0.1, published: str = "") -> HTMLResponse:
    version, labels = views.label_map(settings_of(request))
    results = s.content(sorted(set(nodes)), min_fraction, None, Page(limit=50)) if nodes else None
    return page(request, "maps.html", version=version, grid=views.som_map(s, labels), nodes=set(nodes),
                min_fraction=min_fraction, results=results, published=published)


@router.get("/maps/prototypes.png")
def prototypes(request: Request) -> Response:
    directory = views.desom1_directory(settings_of(request))
    if not (directory / "prototypes.npy").is_file():
        raise HTTPException(status_code=404, detail="this DESOM-1 version ships no prototypes.npy")
    png = views.prototypes_png(directory)
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/cells/{x}/{y}", response_class=HTMLResponse)
def cell(request: Request, s: SearchDep, x: int, y: int) -> HTMLResponse:
    version, labels = views.label_map(settings_of(request))
    if not (0 <= x < labels.grid[0] and 0 <= y < labels.grid[1]):
        return page(request, "message.html", 404, title="Not found", message=f"no cell ({x}, {y}) on the map")
    pending = draft(s.archive, settings_of(request).models.repository, settings_of(request).models.desom2)
    return page(request, "cell.html", version=version, c=views.cell_view(s, labels, x, y),
                pending=[e for e in pending.edits if e.cell == y * labels.grid[0] + x])


@router.post("/cells/{x}/{y}/label")
def relabel(request: Request, user: UserDep, x: int, y: int, label: Annotated[Label, Form()],
            note: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    settings = settings_of(request)
    try:
        record_edit(get_search(request).archive, settings.models.repository, settings.models.desom2,
                    cell=(x, y), label=label, note=note, user=user)
    except ValueError as err:
        raise HTTPException(status_code=422, detail=str(err)) from None
    return RedirectResponse(f"/cells/{x}/{y}", status_code=303)


@router.post("/publish")
def publish(request: Request, user: UserDep, note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    settings = settings_of(request)
    try:
        done = publish_edits(get_search(request).archive, settings.models.repository, settings.models.desom2,
                             user=user, note=note)
    except NothingToPublish as err:
        return page(request, "message.html", 409, title="Nothing to publish", message=str(err))
    return RedirectResponse(f"/maps?published={done.version}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002 - the usual name
    return page(request, "login.html", next=_local(next), failed=False)


@router.post("/login", dependencies=[Depends(auth.check_csrf)])
def login(request: Request, user: Annotated[str, Form(max_length=128)], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/") -> Response:  # noqa: A002
    if not auth.verify_password(settings_of(request).web, user, password):
        return page(request, "login.html", 401, next=_local(next), failed=True)
    auth.log_in(request, user)
    return RedirectResponse(_local(next), status_code=303)


@router.post("/logout", dependencies=[Depends(auth.check_csrf)])
def logout(request: Request) -> RedirectResponse:
    auth.log_out(request)
    return RedirectResponse("/", status_code=303)


def _local(target: str) -> str:
    """Only same-site paths after login: no open redirect."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
