"""`create_web_app(settings)`: the API's app (skyqa.service.api.app.create_app) with its routes under /api, the
pages at the root, signed-cookie sessions and the static files (package data: no CDN, no JS build step)."""

from __future__ import annotations

import gc
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from skyqa.service.api.app import create_app
from skyqa.service.config import Settings
from skyqa.service.search.library import Search
from skyqa.service.web.pages import render_live_part, router
from skyqa.service.web.views import Previews

API_PREFIX = "/api"
LIVE_PARTS = 32  # rendered night live parts kept: ~150-300 kB each


def create_web_app(settings: Settings, search_engine: Search | None = None) -> FastAPI:
    app = create_app(settings, search_engine, api_prefix=API_PREFIX)
    app.state.settings = settings
    app.state.web_config = settings.web
    app.state.previews = Previews(settings.previews.location)
    app.state.live_parts = lru_cache(maxsize=LIVE_PARTS)(render_live_part)  # pages.live_part
    app.add_middleware(SessionMiddleware, secret_key=settings.web.session_secret.get_secret_value(),
                       session_cookie="skyqa_session", same_site="lax", https_only=settings.web.https_only)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(router)
    return app


def freeze_startup_heap() -> None:
    """Called once the server's app is built: the modules, models and schemas loaded by then live as long as the
    process, so they leave the collector's full passes, which otherwise scan them all (~100 ms CPU on a
    1M-exposure server, one night page in ~3 triggering one: bench/web.py)."""
    gc.collect()
    gc.freeze()
