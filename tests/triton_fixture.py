"""Session-scoped real Triton server (scripts/triton.sh, CPU, Python backend) serving tiny contract models.

Import `triton_server` into a test module to use it; the server is always stopped at session end.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from skyqa.service.inference.triton_repository import write_local
from tests.onnx_factory import write_models

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "triton.sh"


def free_ports(n: int) -> list[int]:
    """n distinct ports free right now (held open together so that they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.socket())) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@dataclass(frozen=True)
class TritonServer:
    models: Path  # the source repository (models/<name>/<v>/model.onnx), as the client side sees it
    http_url: str
    grpc_url: str

    def url(self, protocol: str) -> str:
        return self.grpc_url if protocol == "grpc" else self.http_url


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    base = tmp_path_factory.mktemp("triton")
    models = write_models(base / "models")
    repo = write_local(models, base / "repository")
    http, grpc, metrics = free_ports(3)
    env = {**os.environ, "TRITON_RUN_DIR": str(base / "run")}
    subprocess.run(["bash", str(SCRIPT), "fetch"], check=True, env=env)
    subprocess.run(["bash", str(SCRIPT), "start", str(repo), str(http), str(grpc), str(metrics)], check=True, env=env)
    try:
        yield TritonServer(models, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}")
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], check=True, env=env)
