"""Reading archive input from files: `classify --json` output (JSON lines), verdict files and dead-letter files.

Each JSON document is a verdict when it validates as one, a dead letter when it carries a `reason` (any extra
fields are kept), and an error otherwise: nothing is guessed, and a bad line names its file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from skyqa.service.verdict import Verdict


class DocumentError(ValueError):
    """A document that is neither a verdict nor a dead letter."""


@dataclass(frozen=True)
class Parsed:
    verdict: Verdict | None = None
    dead_letter: bytes | None = None


def parse_document(raw: bytes) -> Parsed:
    try:
        document = json.loads(raw)
    except ValueError as err:
        raise DocumentError(f"not JSON: {err}") from None
    if not isinstance(document, dict):
        raise DocumentError("not a JSON object")
    if "histovector" in document:
        try:
            return Parsed(verdict=Verdict.model_validate(document))
        except ValidationError as err:
            raise DocumentError(f"invalid verdict: {err.error_count()} errors, first: {err.errors()[0]['msg']} "
                               f"at {'.'.join(map(str, err.errors()[0]['loc']))}") from None
    if isinstance(document.get("reason"), str):
        return Parsed(dead_letter=raw.strip())
    raise DocumentError("neither a verdict (no histovector) nor a dead letter (no reason)")


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a directory gives its *.json and *.jsonl files, recursively (a daemon's verdicts/ and
    rejected/ directories)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file()))
        else:
            files.append(path)
    return files


def read_file(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, document) pairs: a file holding one pretty-printed document counts as one line."""
    data = path.read_bytes()
    stripped = data.strip()
    if stripped.startswith(b"{") and b"\n" in stripped:
        try:
            json.loads(stripped)
        except ValueError:
            pass  # JSON lines: one document a line
        else:
            yield 1, stripped
            return
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield number, line
