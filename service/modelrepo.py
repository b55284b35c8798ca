"""Version resolution and atomic publishing in the model repository (`models/<name>/<version>/`).

Shared by local and Triton inference (resolution), `skyqa export` and curation publishing (new versions).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def versions(repo: Path, name: str) -> list[int]:
    """Numbered version directories of one model, ascending (Triton ignores non-numeric directories too)."""
    root = Path(repo) / name
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version(repo: Path, name: str, version: str) -> tuple[str, Path]:
    """("latest" | "<n>") -> (version string, version directory); "latest" is the highest numbered directory."""
    found = versions(repo, name)
    if not found:
        raise FileNotFoundError(f"no numbered version directory under {Path(repo) / name}")
    if version == "latest":
        chosen = found[-1]
    elif version.isdigit() and int(version) in found:
        chosen = int(version)
    else:
        raise FileNotFoundError(f"{name}: version {version!r} not in {Path(repo) / name} (have {found})")
    return str(chosen), Path(repo) / name / str(chosen)


def next_version(repo: Path, name: str) -> str:
    return str(max(versions(repo, name), default=0) + 1)


class VersionExists(FileExistsError):
    """Another publisher took the version number first; nothing was written."""


@contextmanager
def new_version(repo: Path, name: str) -> Iterator[tuple[str, Path]]:
    """(version, staging directory) to fill; on a clean exit the directory becomes `<repo>/<name>/<version>` in one
    rename, so a reader resolving "latest" (a reloading daemon, Triton's poller) never sees half a version, and a
    live version is never overwritten. On an exception the staging directory is removed and nothing is published."""
    root = Path(repo) / name
    root.mkdir(parents=True, exist_ok=True)
    version = next_version(repo, name)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))  # not numeric: invisible to `versions`
    try:
        yield version, staging
        # mkdtemp made it owner-only; a published version is read by other users (Triton runs as its own uid)
        os.chmod(staging, 0o755)
        target = root / version
        if target.exists():
            raise VersionExists(f"{target} was published meanwhile")
        os.rename(staging, target)  # refuses (ENOTEMPTY) a non-empty target that appeared since the check
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
