"""One router per area: exposures, search, nights, cells. Handlers are thin: the search library does the work."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from skyqa.service.api.deps import get_filters, get_page, get_search
from skyqa.service.api.nights import NightSummary, summarise_night
from skyqa.service.search.filters import MAX_K, Filters, Hit, Page
from skyqa.service.search.library import NotFound, Search

SearchDep = Annotated[Search, Depends(get_search)]
FiltersDep = Annotated[Filters, Depends(get_filters)]
PageDep = Annotated[Page, Depends(get_page)]
ExposureId = Annotated[str, Path(min_length=1, max_length=128)]
K = Annotated[int, Query(ge=1, le=MAX_K)]

exposures = APIRouter(prefix="/exposures", tags=["exposures"])
search = APIRouter(prefix="/search", tags=["search"])
nights = APIRouter(prefix="/nights", tags=["nights"])
cells = APIRouter(prefix="/cells", tags=["cells"])


def not_found(exposure_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no archived exposure {exposure_id!r}")


@exposures.get("", response_model=list[Hit], summary="archived exposures (latest verdicts) matching filters")
def list_exposures(s: SearchDep, filters: FiltersDep, page: PageDep) -> list[Hit]:
    return s.list(filters, page)


@exposures.get("/{exposure_id}", summary="one exposure: latest verdict and verdict history")
def one_exposure(s: SearchDep, exposure_id: ExposureId) -> dict:
    try:
        return s.exposure(exposure_id)
    except NotFound:
        raise not_found(exposure_id) from None


@search.get("/similar", response_model=list[Hit], summary="the k exposures nearest to an archived one")
def similar(s: SearchDep, filters: FiltersDep, exposure_id: Annotated[str, Query(min_length=1, max_length=128)],
            k: K = 10) -> list[Hit]:
    try:
        return s.similar_to_exposure(exposure_id, k, filters)
    except NotFound:
        raise not_found(exposure_id) from None


class VectorQuery(BaseModel):
    histovector: list[Annotated[int, Field(ge=0)]] = Field(min_length=625, max_length=625)
    k: int = Field(10, ge=1, le=MAX_K)


@search.post("/similar", response_model=list[Hit], summary="the k exposures nearest to a given histo-vector")
def similar_to_vector(s: SearchDep, filters: FiltersDep, query: VectorQuery) -> list[Hit]:
    return s.similar_to_vector(np.asarray(query.histovector), query.k, filters)


@search.get("/content", response_model=list[Hit], summary="exposures whose sources concentrate in DESOM-1 nodes")
def content(s: SearchDep, filters: FiltersDep, page: PageDep,
            nodes: Annotated[list[Annotated[int, Field(ge=0, le=624)]], Query(min_length=1, max_length=625)],
            min_fraction: Annotated[float, Query(ge=0.0, le=1.0)] = 0.2) -> list[Hit]:
    return s.content(sorted(set(nodes)), min_fraction, filters, page)


@nights.get("/{night}", response_model=NightSummary, summary="counts per label, usable fraction, seeing per hour")
def night_summary(s: SearchDep, night: date) -> NightSummary:
    summary = summarise_night(s, night)
    if summary.exposures == 0:
        raise HTTPException(status_code=404, detail=f"no archived exposure on night {night}")
    return summary


@cells.get("/{cell_x}/{cell_y}/exposures", response_model=list[Hit], summary="members of a DESOM-2 cell")
def cell_members(s: SearchDep, page: PageDep, cell_x: Annotated[int, Path(ge=0, le=99)],
                 cell_y: Annotated[int, Path(ge=0, le=99)]) -> list[Hit]:
    return s.list(Filters(cell=(cell_x, cell_y)), page)
