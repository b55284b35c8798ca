"""Version resolution in the model repository (`models/<name>/<version>/`), shared by local and Triton inference."""

from __future__ import annotations

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
