"""`skyqa search similar|content|list`: the search library from the shell (a table, or JSON lines with --json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skyqa.service.labels import Label
from skyqa.service.search.filters import MAX_K, MAX_PAGE, RANGED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="override settings.archive.url")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    similar = kinds.add_parser("similar", help="the k exposures nearest by histo-vector (Hellinger distance)")
    similar.add_argument("target", help="an archived exposure id, or a FITS file (classified on the fly)")
    similar.add_argument("--k", type=int, default=10, help=f"neighbours (1..{MAX_K})")
    content = kinds.add_parser("content", help="exposures whose sources concentrate in chosen DESOM-1 nodes")
    content.add_argument("--nodes", required=True, help="node indices (row-major on the 25x25 map): 3,4,28 or 0-24")
    content.add_argument("--min-fraction", type=float, default=0.2, help="fraction of W in the nodes, at least")
    listing = kinds.add_parser("list", help="archived exposures matching filters")
    listing.add_argument("--order", choices=["novelty", "time", "exposure"], default="time")
    for sub in (similar, content, listing):
        _filters(sub)
        sub.add_argument("--json", action="store_true", help="one JSON object per line")
    for sub in (content, listing):
        sub.add_argument("--limit", type=int, default=50, help=f"page size (1..{MAX_PAGE})")
        sub.add_argument("--offset", type=int, default=0)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", action="append", choices=[label.value for label in Label])
    parser.add_argument("--usable", choices=["yes", "no"])
    parser.add_argument("--cell", help="DESOM-2 cell x,y")
    parser.add_argument("--night", help="observing night YYYY-MM-DD")
    parser.add_argument("--since", help="DATE-OBS at or after (ISO time)")
    parser.add_argument("--until", help="DATE-OBS before (ISO time)")
    parser.add_argument("--band", help="filter band, e.g. r")
    for name in RANGED:
        flag = name.replace("_", "-")
        parser.add_argument(f"--{flag}-min", type=float, dest=f"{name}_min")
        parser.add_argument(f"--{flag}-max", type=float, dest=f"{name}_max")


def parse_nodes(text: str) -> list[int]:
    nodes: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        nodes.update(range(int(low), int(high or low) + 1))
    if not nodes or min(nodes) < 0 or max(nodes) >= 625:
        raise ValueError(f"nodes must lie in 0..624: {text}")
    return sorted(nodes)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from skyqa.service.archive.store import Archive
    from skyqa.service.search.filters import Filters, Page
    from skyqa.service.search.library import NotFound, Search

    raw = {k: getattr(args, k) for k in ("label", "night", "since", "until", "band",
                                          *(f"{n}_{e}" for n in RANGED for e in ("min", "max")))}
    raw["usable"] = {"yes": True, "no": False}.get(args.usable or "")
    raw["cell"] = tuple(args.cell.split(",")) if args.cell else None
    try:
        filters = Filters.model_validate({k: v for k, v in raw.items() if v is not None})
        page = Page(limit=args.limit, offset=args.offset, order=getattr(args, "order", "time")) \
            if args.kind != "similar" else None
        if args.kind == "similar" and not 1 <= args.k <= MAX_K:
            raise ValueError(f"--k must lie in 1..{MAX_K}")
        nodes = parse_nodes(args.nodes) if args.kind == "content" else []
    except (ValidationError, ValueError) as err:
        print(f"skyqa search: {err}", file=sys.stderr)
        return 2
    settings = args.settings
    search = Search(Archive(args.url or settings.archive.url))
    try:
        if args.kind == "similar":
            hits = _similar(search, args.target, args.k, filters, settings)
        elif args.kind == "content":
            hits = search.content(nodes, args.min_fraction, filters, page)
        else:
            hits = search.list(filters, page)
    except NotFound as err:
        print(f"skyqa search: no archived exposure {err}", file=sys.stderr)
        return 1
    if args.json:
        for hit in hits:
            print(hit.model_dump_json())
    else:
        print(HEADER)
        for hit in hits:
            print(table_row(hit))
    return 0


def _similar(search, target: str, k: int, filters, settings):  # noqa: ANN001, ANN202
    path = Path(target)
    if not path.is_file():
        return search.similar_to_exposure(target, k, filters)
    from skyqa.service.pipeline.classify import Classifier

    classifier = Classifier(settings)
    try:
        return search.similar_to_file(path, k, classifier, filters)
    finally:
        classifier.close()


HEADER = f"{'exposure':<14}{'label':<11}{'cell':>6}{'dist':>9}{'fwhm':>7}{'elong':>7}{'filter':>12}{'night':>12}{'score':>9}"


def table_row(hit) -> str:  # noqa: ANN001 - skyqa.service.search.filters.Hit
    def fmt(value: object, spec: str) -> str:
        return format(value, spec) if value is not None else "-"

    cell = f"{hit.cell[0]},{hit.cell[1]}" if hit.cell else "-"
    return (f"{hit.exposure_id:<14}{hit.label.value:<11}{cell:>6}{fmt(hit.distance, '.3g'):>9}"
            f"{fmt(hit.metrics.fwhm_arcsec, '.2f'):>7}{fmt(hit.metrics.elongation, '.2f'):>7}"
            f"{(hit.metadata.filter or '-'):>12}{fmt(hit.metadata.night, ''):>12}{fmt(hit.score, '.4f'):>9}")
