"""Request-scoped helpers: the app's Search, and query parameters turned into validated Filters / Page."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from skyqa.service.labels import Label
from skyqa.service.search.filters import MAX_PAGE, Filters, Page
from skyqa.service.search.library import Search


def get_search(request: Request) -> Search:
    return request.app.state.search


def validated(model, **values):  # noqa: ANN001, ANN201 - a pydantic model class
    """Cross-field rules (min <= max, since < until) fail as 422 like any other bad parameter."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False, include_context=False)) from None


def get_filters(
    label: Annotated[list[Label] | None, Query()] = None,
    usable: bool | None = None,
    cell_x: Annotated[int | None, Query(ge=0, le=99)] = None,
    cell_y: Annotated[int | None, Query(ge=0, le=99)] = None,
    night: date | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    band: Annotated[str | None, Query(max_length=32)] = None,
    fwhm_arcsec_min: float | None = None, fwhm_arcsec_max: float | None = None,
    elongation_min: float | None = None, elongation_max: float | None = None,
    background_adu_min: float | None = None, background_adu_max: float | None = None,
    distance_min: float | None = None, distance_max: float | None = None,
    airmass_min: float | None = None, airmass_max: float | None = None,
) -> Filters:
    values = dict(locals())
    x, y = values.pop("cell_x"), values.pop("cell_y")
    if (x is None) != (y is None):
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "cell_x" if x is None else "cell_y"),
                                       "msg": "cell_x and cell_y go together", "input": None}])
    return validated(Filters, **values, cell=(x, y) if x is not None else None)


def get_page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    order: Literal["novelty", "time", "exposure"] = "time",
) -> Page:
    return Page(limit=limit, offset=offset, order=order)
