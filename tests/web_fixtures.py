"""A web app on a small archive (SQLite) and the tiny model repository, with one operator, for the web tests."""

from __future__ import annotations

import re
from pathlib import Path

from skyqa.service.archive.store import Archive
from skyqa.service.config import Settings
from skyqa.service.labels import Label
from skyqa.service.web.auth import hash_password
from tests.model_repo_factory import write_repository
from tests.verdict_factory import make_verdict, random_histovectors

NIGHT = "2026-11-22"  # tests.verdict_factory's night
OPERATOR, PASSWORD = "ana", "correct horse"
LABELS = [Label.GOOD, Label.BT, Label.RBT]
_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: once per session


def web_settings(tmp_path: Path, exposures: int = 30, **web: object) -> Settings:
    """Settings whose archive holds `exposures` verdicts of NIGHT in cells (0..2, 1) of the 4 x 4 tiny map."""
    repo = write_repository(tmp_path / "models", {k: Label.GOOD for k in range(16)})
    settings = Settings(archive={"url": f"sqlite:///{tmp_path / 'archive.db'}"}, models={"repository": repo},
                        previews={"location": tmp_path / "previews"},
                        web={"users": {OPERATOR: _HASH}, "live_poll_s": 0.5, **web})
    vectors, cluster = random_histovectors(exposures, seed=4, clusters=3)
    archive = Archive(settings.archive.url)
    archive.write([make_verdict(f"e{i:02d}", v, LABELS[c], minute=10 * i, cell=(int(c), 1), fwhm=0.6 + 0.01 * i,
                                distance=i / 10, band="gr"[i % 2]) for i, (v, c) in enumerate(zip(vectors, cluster))])
    archive.close()
    return settings


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
