"""Exposure ids are data, not paths: they come from events, FITS headers and file names, and end up in file
names and message keys, so they are validated in one place and joined to directories by one function."""

from __future__ import annotations

import re
from pathlib import Path

MAX_ID_LENGTH = 128
# Letters, digits and . _ + - ; starts with a letter or digit (so never '.', '..', a hidden file or an option).
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{MAX_ID_LENGTH - 1}}}")


class InvalidId(ValueError):
    """An exposure id or file name that must not be used (as a key or in a path)."""


def normalise_exposure_id(value: object) -> str:
    """The id as text, surrounding blanks removed; raises InvalidId unless it matches the allowed pattern."""
    text = str(value).strip()
    if not _ID.fullmatch(text):
        shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} chars)"
        raise InvalidId(f"exposure id {shown!r} is not 1-{MAX_ID_LENGTH} of [A-Za-z0-9._+-] starting alphanumeric")
    return text


def is_valid_exposure_id(value: object) -> bool:
    try:
        normalise_exposure_id(value)
    except InvalidId:
        return False
    return True


def safe_join(directory: Path, name: str) -> Path:
    """`directory / name` for a single plain file name; raises InvalidId for anything that could leave
    `directory` (separators, '.', '..', NUL, an absolute path) or is not a usable file name."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
            or len(name.encode()) > 255 or Path(name).name != name):
        raise InvalidId(f"{name[:60]!r} is not a plain file name")
    target = directory / name
    if target.parent != directory:
        raise InvalidId(f"{name[:60]!r} leaves {directory}")
    return target
