"""`skyqa archive import|consume|migrate`: fill the archive and keep its schema current."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="override settings.archive.url (sqlite:///FILE or postgresql+psycopg://...)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="backfill from `classify --json` output, verdict and dead-letter files")
    imp.add_argument("files", nargs="+", type=Path, help="files, or directories searched for *.json / *.jsonl")
    imp.add_argument("--batch", type=int, default=500, help="documents per transaction")
    actions.add_parser("consume", help="write the Kafka verdict and dead-letter topics to the archive, exactly once")
    mig = actions.add_parser("migrate", help="upgrade the archive's schema (creates it when empty)")
    mig.add_argument("--revision", default="head")


def run(args: argparse.Namespace) -> int:
    settings = args.settings
    if args.url:
        settings.archive.url = args.url
    if args.action == "consume":
        from skyqa.service.stream.archive_consume import consume

        return consume(settings)
    if args.action == "migrate":
        from skyqa.service.archive.schema import current_revision, migrate
        from skyqa.service.archive.store import open_engine

        engine = open_engine(settings.archive.url)
        migrate(engine, args.revision)
        print(f"archive at revision {current_revision(engine)}")
        return 0
    return _import(settings.archive.url, args.files, args.batch)


def _import(url: str, paths: list[Path], batch: int) -> int:
    from skyqa.service.archive.ingest import DocumentError, expand, parse_document, read_file
    from skyqa.service.archive.store import Archive

    archive = Archive(url)
    verdicts, dead_letters, errors, total = [], [], 0, 0

    def flush() -> None:
        nonlocal total
        archive.write(verdicts, dead_letters, source="import")
        total += len(verdicts) + len(dead_letters)
        verdicts.clear()
        dead_letters.clear()

    for path in expand(paths):
        try:
            documents = list(read_file(path))
        except OSError as err:
            print(f"skyqa archive import: {path}: {err.strerror}", file=sys.stderr)
            errors += 1
            continue
        for number, raw in documents:
            try:
                parsed = parse_document(raw)
            except DocumentError as err:
                print(f"skyqa archive import: {path}:{number}: {err}", file=sys.stderr)
                errors += 1
                continue
            if parsed.verdict is not None:
                verdicts.append(parsed.verdict)
            else:
                dead_letters.append(parsed.dead_letter)
            if len(verdicts) + len(dead_letters) >= batch:
                flush()
    flush()
    counts = archive.counts()
    print(f"imported {total} documents ({errors} rejected); archive holds {counts['verdicts']} verdicts of "
          f"{counts['exposures']} exposures and {counts['dead_letters']} dead letters")
    return 1 if errors else 0
