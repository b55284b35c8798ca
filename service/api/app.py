"""The FastAPI app factory: `create_app(settings)` opens the archive and mounts one router per area; the web
app (skyqa.service.web) is this app with the API under /api and its pages at the root."""

from __future__ import annotations

from fastapi import FastAPI

from skyqa import __version__
from skyqa.service.api.routers import cells, exposures, nights, search
from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.search.library import Search


def create_app(settings: Settings, search_engine: Search | None = None, api_prefix: str = "") -> FastAPI:
    """`api_prefix` moves the API's routes (e.g. to /api) where the web pages (skyqa.service.web) take the root."""
    app = FastAPI(title="skyqa archive", version=__version__,
                  description="Verdicts of every exposure, content-based search and night summaries.")
    app.state.search = search_engine or Search(Archive(settings.archive.url))
    for router in (exposures, search, nights, cells):
        app.include_router(router, prefix=api_prefix)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
