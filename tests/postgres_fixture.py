"""Session-scoped real PostgreSQL server (scripts/postgres.sh: a throw-away cluster on 127.0.0.1), always stopped.

Import `postgres_server` into a test module to use it; `database()` hands each test a fresh empty database so
tests sharing the server never see each other's rows. `crash()` + `start()` is a killed and restarted server.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.kafka_fixture import free_port

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


@dataclass(frozen=True)
class PostgresServer:
    data_dir: Path
    port: int

    def start(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "start", str(self.data_dir), str(self.port)], check=True)

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.data_dir)], check=True)

    def crash(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "crash", str(self.data_dir)], check=True)

    def database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=skyqa dbname=skyqa", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://skyqa@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's 0700 tmp root: as root the cluster runs as the `postgres` user, who must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="skyqa-pg-"))
    server = PostgresServer(data_dir, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
