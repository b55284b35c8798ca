"""Fetching exposures: allow-lists, traversal and symlink escapes, size cap, checksum, retry policy (real HTTP)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fsspec
import pytest
from tenacity import wait_none

from skyqa.service.config import FetchConfig
from skyqa.service.stream.fetch import Fetcher, FetchError, file_checksum

DATA = b"SIMPLE  =                    T" + bytes(range(256)) * 40


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture()
def roots(tmp_path: Path) -> tuple[Path, Path]:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "exp.fits").write_bytes(DATA)
    (outside / "secret.fits").write_bytes(DATA)
    return allowed, outside


def fetcher(tmp_path: Path, roots: list[Path] = (), hosts: list[str] = (), **cfg: object) -> Fetcher:
    config = FetchConfig(allowed_roots=list(roots), allowed_hosts=list(hosts), spool_dir=tmp_path / "spool",
                         **{"attempts": 3, **cfg})
    return Fetcher(config, wait=wait_none())


def reason(f: Fetcher, uri: str, checksum: str | None = None) -> str:
    with pytest.raises(FetchError) as info, f.fetch(uri, checksum):
        pass
    return info.value.reason


# -- local files --------------------------------------------------------------------------------------------------
def test_local_file_used_in_place(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    with fetcher(tmp_path, [allowed]).fetch((allowed / "exp.fits").as_uri(), sha(DATA)) as path:
        assert path == (allowed / "exp.fits").resolve()
    assert path.exists()  # never deleted: it is the archive's file
    assert file_checksum(path) == sha(DATA)


def test_outside_roots_traversal_and_symlinks(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    allowed, outside = roots
    f = fetcher(tmp_path, [allowed])
    assert reason(f, (outside / "secret.fits").as_uri()) == "disallowed_uri"
    assert reason(f, f"file://{allowed}/../outside/secret.fits") == "disallowed_uri"
    assert reason(f, f"file://{allowed}/%2E%2E/outside/secret.fits") == "disallowed_uri"
    (allowed / "link.fits").symlink_to(outside / "secret.fits")
    assert reason(f, (allowed / "link.fits").as_uri()) == "disallowed_uri"
    assert reason(f, "file://otherhost/data/exp.fits") == "disallowed_uri"
    assert reason(f, "exp.fits") == "disallowed_uri"
    assert reason(fetcher(tmp_path, []), (allowed / "exp.fits").as_uri()) == "disallowed_uri"
    assert reason(f, f"file://{allowed}/exp%00.fits") == "disallowed_uri"  # the OS refuses the path: no crash
    (allowed / "loop.fits").symlink_to(allowed / "loop.fits")
    assert reason(f, (allowed / "loop.fits").as_uri()) == "disallowed_uri"


def test_local_file_says_what_fetch_would_hand_over(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    allowed, outside = roots
    f = fetcher(tmp_path, [allowed])
    (allowed / "link.fits").symlink_to(outside / "secret.fits")
    (allowed / "alias.fits").symlink_to(allowed / "exp.fits")
    target = (allowed / "exp.fits").resolve()
    assert f.local_file(allowed / "exp.fits") == f.local_file(allowed / "alias.fits") == target
    assert f.local_file(allowed / "link.fits") is None  # a symlink out of the roots is never read ahead
    assert f.local_file(outside / "secret.fits") is None and f.local_file(allowed / "nope.fits") is None
    assert f.local_uri((allowed / "alias.fits").as_uri()) == target  # what the Kafka daemon reads ahead
    assert f.local_uri("http://archive.example/exp.fits") is None  # a download waits for its turn
    assert f.local_uri(f"file://{allowed}/exp%00.fits") is None and f.local_uri("file://otherhost/exp.fits") is None


def test_symlink_inside_roots_is_fine(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    (allowed / "alias.fits").symlink_to(allowed / "exp.fits")
    with fetcher(tmp_path, [allowed]).fetch((allowed / "alias.fits").as_uri()) as path:
        assert path == (allowed / "exp.fits").resolve()


def test_local_missing_too_large_checksum(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    allowed, _ = roots
    uri = (allowed / "exp.fits").as_uri()
    assert reason(fetcher(tmp_path, [allowed]), (allowed / "nope.fits").as_uri()) == "missing_file"
    assert reason(fetcher(tmp_path, [allowed]), allowed.as_uri()) == "missing_file"
    assert reason(fetcher(tmp_path, [allowed], max_bytes=len(DATA) - 1), uri) == "too_large"
    assert reason(fetcher(tmp_path, [allowed]), uri, sha(b"other")) == "checksum_mismatch"


# -- HTTP -------------------------------------------------------------------------------------------------------
class FlakyServer:
    """Serves DATA at /exp.fits after `failures` 503s; /missing 404; /lying lies about its length; /slow stalls."""

    def __init__(self) -> None:
        self.failures = 0
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.requests.append(self.path)
                if self.path == "/missing.fits":
                    self.send_error(404)
                elif self.path == "/forbidden.fits":
                    self.send_error(403)
                elif self.path == "/redirect.fits":
                    self.send_response(302)
                    self.send_header("Location", "http://evil.example/exp.fits")
                    self.end_headers()
                elif self.path == "/exp.fits" and owner.failures > 0:
                    owner.failures -= 1
                    self.send_error(503)
                elif self.path == "/lying.fits":  # no Content-Length, more bytes than the cap
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(DATA * 4)
                    self.close_connection = True
                elif self.path == "/slow.fits":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(DATA)))
                    self.end_headers()
                    threading.Event().wait(2)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(DATA)))
                    self.end_headers()
                    self.wfile.write(DATA)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://{self.host}/{name}"


@pytest.fixture()
def server() -> Iterator[FlakyServer]:
    s = FlakyServer()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_http_download_to_spool_and_cleanup(tmp_path: Path, server: FlakyServer) -> None:
    f = fetcher(tmp_path, hosts=[server.host])
    with f.fetch(server.url("exp.fits"), sha(DATA)) as path:
        assert path.parent == tmp_path / "spool" and path.name.endswith("exp.fits")
        assert path.read_bytes() == DATA
    assert not path.exists()
    assert list((tmp_path / "spool").iterdir()) == []


def test_http_host_allow_list(tmp_path: Path, server: FlakyServer) -> None:
    assert reason(fetcher(tmp_path, hosts=["archive.example"]), server.url("exp.fits")) == "disallowed_uri"
    assert reason(fetcher(tmp_path, hosts=["127.0.0.1"]), server.url("redirect.fits")) == "fetch_failed"
    assert server.requests == ["/redirect.fits"]  # disallowed host: no request at all; redirect: not followed


def test_http_retries_transient_errors_then_succeeds(tmp_path: Path, server: FlakyServer) -> None:
    server.failures = 2
    with fetcher(tmp_path, hosts=["127.0.0.1"], attempts=3).fetch(server.url("exp.fits")) as path:
        assert path.read_bytes() == DATA
    assert server.requests == ["/exp.fits"] * 3


def test_http_gives_up_after_attempts(tmp_path: Path, server: FlakyServer) -> None:
    server.failures = 10
    assert reason(fetcher(tmp_path, hosts=["127.0.0.1"], attempts=3), server.url("exp.fits")) == "fetch_failed"
    assert server.requests == ["/exp.fits"] * 3
    assert list((tmp_path / "spool").iterdir()) == []


def test_http_permanent_errors_are_not_retried(tmp_path: Path, server: FlakyServer) -> None:
    f = fetcher(tmp_path, hosts=["127.0.0.1"], attempts=3, max_bytes=len(DATA) - 1)
    assert reason(f, server.url("missing.fits")) == "missing_file"
    assert reason(f, server.url("forbidden.fits")) == "fetch_failed"
    assert reason(f, server.url("exp.fits")) == "too_large"  # Content-Length checked before downloading
    assert reason(f, server.url("lying.fits")) == "too_large"  # and bytes counted while downloading
    assert server.requests == ["/missing.fits", "/forbidden.fits", "/exp.fits", "/lying.fits"]
    assert list((tmp_path / "spool").iterdir()) == []


def test_http_checksum_mismatch(tmp_path: Path, server: FlakyServer) -> None:
    assert reason(fetcher(tmp_path, hosts=["127.0.0.1"]), server.url("exp.fits"), sha(b"x")) == "checksum_mismatch"
    assert list((tmp_path / "spool").iterdir()) == []


def test_http_timeout_is_transient(tmp_path: Path, server: FlakyServer) -> None:
    f = fetcher(tmp_path, hosts=["127.0.0.1"], attempts=2, timeout_s=0.3)
    assert reason(f, server.url("slow.fits")) == "fetch_failed"
    assert server.requests == ["/slow.fits"] * 2


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    f = fetcher(tmp_path, hosts=["127.0.0.1"], attempts=2)
    assert reason(f, "http://127.0.0.1:9/exp.fits") == "fetch_failed"


# -- other fsspec schemes -----------------------------------------------------------------------------------------
def test_fsspec_scheme(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/exp.fits", DATA)
    f = fetcher(tmp_path, hosts=["bucket"])
    with f.fetch("memory://bucket/exp.fits", sha(DATA)) as path:
        assert path.read_bytes() == DATA
    assert reason(f, "memory://bucket/none.fits") == "missing_file"
    assert reason(f, "memory://other/exp.fits") == "disallowed_uri"
    assert reason(fetcher(tmp_path, hosts=["bucket"], max_bytes=10), "memory://bucket/exp.fits") == "too_large"
