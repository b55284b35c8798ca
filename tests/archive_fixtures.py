"""`archive_url` and `archive`: each test runs on an SQLite file and on a fresh database of the real PostgreSQL server.

Import both (and `postgres_server`) into a test module to use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skyqa.service.archive.store import Archive
from tests.postgres_fixture import postgres_server  # noqa: F401 - session fixture the PostgreSQL case asks for


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'archive.db'}"
    return request.getfixturevalue("postgres_server").database()


@pytest.fixture
def archive(archive_url: str) -> Iterator[Archive]:
    archive = Archive(archive_url)
    yield archive
    archive.close()
