"""/metrics, /healthz and /readyz on one small HTTP server (stdlib, in a daemon thread).

/healthz: the process is alive and its loop is not stuck (it beat within `stuck_after_s`), for the liveness
probe. /readyz: every readiness check passes (broker reachable, inference backend ready with the models
loaded), for the readiness probe; 503 with the failing checks otherwise. Check results are cached briefly so
probes and scrapes do not hammer Triton or the broker.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from skyqa.service.stream.metrics import READY

Check = Callable[[], bool]


class Health:
    def __init__(self, checks: dict[str, Check], stuck_after_s: float, cache_s: float = 2.0) -> None:
        self.checks, self.stuck_after_s, self.cache_s = checks, stuck_after_s, cache_s
        self._beat = time.monotonic()
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, bool]] | None = None

    def beat(self) -> None:
        self._beat = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self._beat < self.stuck_after_s

    def readiness(self) -> dict[str, bool]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.cache_s:
                self._cached = (time.monotonic(), {name: _safe(check) for name, check in self.checks.items()})
                READY.set(1 if all(self._cached[1].values()) else 0)
            return self._cached[1]


def _safe(check: Check) -> bool:
    try:
        return bool(check())
    except Exception:  # a probe must answer, whatever the dependency does
        return False


def tcp_reachable(bootstrap_servers: str, timeout_s: float = 2.0) -> Check:
    """Broker reachability: any bootstrap server accepts a TCP connection."""

    def check() -> bool:
        for server in bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                    return True
            except OSError:
                continue
        return False

    return check


class HealthServer:
    def __init__(self, health: Health, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"health": health})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    health: Health

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self.health.readiness()  # keeps skyqa_ready current at every scrape
            self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            alive = self.health.alive()
            self._send(200 if alive else 503, json.dumps({"alive": alive}).encode(), "application/json")
        elif path == "/readyz":
            checks = self.health.readiness()
            ready = all(checks.values())
            self._send(200 if ready else 503, json.dumps({"ready": ready, "checks": checks}).encode(), "application/json")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - probes every few seconds: no access log
        return
