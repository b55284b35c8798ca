"""Fetch the exposure an event points to, from allowed places only, within a size cap, checksum-verified.

Events come from outside the daemon: a URI must not make it read arbitrary local files (`..`, symlinks out of
the allowed roots) or fetch from arbitrary hosts, and a huge file must not fill the disk. Local files
(`file://`) are used in place; `http(s)://` and other fsspec URLs are downloaded to the spool directory and
deleted once the exposure is processed. Only transient failures (connection errors, timeouts, 5xx) are retried
(tenacity, jittered exponential backoff); a missing, disallowed, oversized or corrupt file is rejected at once.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import fsspec
import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from skyqa.service.config import FetchConfig
from skyqa.service.pipeline.ids import safe_join
from skyqa.service.stream.errors import Rejected

CHUNK = 1 << 20
RETRIABLE_STATUS = {408, 429, 500, 502, 503, 504}
MISSING_STATUS = {404, 410}


class FetchError(Rejected):
    """reason: disallowed_uri | missing_file | too_large | checksum_mismatch | fetch_failed."""

    stage = "fetch"


class _TransientFetch(Exception):
    """A failure worth another attempt (network, timeout, 5xx); becomes fetch_failed when attempts run out."""


class Fetcher:
    """`with fetcher.fetch(uri, checksum) as path:` -> a local path readable for the duration of the block."""

    def __init__(self, cfg: FetchConfig, wait: wait_base | None = None) -> None:
        self.cfg = cfg
        self.roots = [Path(r).expanduser().resolve() for r in cfg.allowed_roots]
        self.hosts = {h.lower() for h in cfg.allowed_hosts}
        self._wait = wait or wait_random_exponential(multiplier=0.5, max=30)

    @contextmanager
    def fetch(self, uri: str, checksum: str | None = None) -> Iterator[Path]:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme == "file":
            yield self._local(parts.netloc, unquote(parts.path), checksum)
            return
        if not scheme or not parts.netloc:
            raise FetchError("disallowed_uri", f"not an absolute URL: {uri!r}")
        if parts.hostname is None or (parts.hostname.lower() not in self.hosts and parts.netloc.lower() not in self.hosts):
            raise FetchError("disallowed_uri", f"host {parts.netloc!r} is not in fetch.allowed_hosts")
        target = self._spool_path(parts.path)
        try:
            self._with_retries(self._download_http if scheme in ("http", "https") else self._download_fsspec, uri, target)
            _verify(_sha256_file(target), checksum)
            yield target
        finally:
            target.unlink(missing_ok=True)

    def spooled(self, path: Path) -> bool:
        """Whether `path` is a download `fetch` deletes when its block ends."""
        return path.parent.resolve() == Path(self.cfg.spool_dir).resolve()

    def local_file(self, path: Path) -> Path | None:
        """The file `fetch` would hand over for this local path (resolved), or None where it would reject it: what
        may be read before its event is processed (the daemons starting the next file early)."""
        return self.local_uri(path.absolute().as_uri())

    def local_uri(self, uri: str) -> Path | None:
        """`local_file` for a URI: None for a download too (nothing is fetched ahead of its turn)."""
        parts = urlsplit(uri)
        if parts.scheme.lower() != "file":
            return None
        try:
            return self._local(parts.netloc, unquote(parts.path), None)
        except FetchError:
            return None

    # -- local files: used in place ---------------------------------------------------------------------------
    def _local(self, host: str, raw_path: str, checksum: str | None) -> Path:
        if host not in ("", "localhost"):
            raise FetchError("disallowed_uri", f"file:// URL with a remote host {host!r}")
        path = Path(raw_path)
        if not path.is_absolute():
            raise FetchError("disallowed_uri", f"relative file path {raw_path!r}")
        try:
            resolved = path.resolve()  # collapses `..` and follows symlinks before the allow-list check
        except (OSError, RuntimeError, ValueError) as err:  # a NUL byte (%00), a symlink loop
            raise FetchError("disallowed_uri", f"unusable file path {raw_path!r}: {err}") from None
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise FetchError("disallowed_uri", f"{raw_path} resolves outside fetch.allowed_roots")
        if not resolved.is_file():
            raise FetchError("missing_file", f"no such file: {raw_path}")
        try:
            self._check_size(resolved.stat().st_size)
            if checksum is not None:
                _verify(_sha256_file(resolved), checksum)
        except OSError as err:  # permissions, I/O errors: the file is there but unusable
            raise FetchError("fetch_failed", f"cannot read {raw_path}: {err}") from None
        return resolved

    # -- downloads: to the spool directory -------------------------------------------------------------------
    def _spool_path(self, url_path: str) -> Path:
        self.cfg.spool_dir.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(unquote(url_path)).name)[-100:] or "exposure.fits"
        return safe_join(self.cfg.spool_dir, f"{uuid.uuid4().hex}-{name}")

    def _with_retries(self, download, uri: str, target: Path) -> None:  # noqa: ANN001 - one of the _download_*
        retrying = Retrying(stop=stop_after_attempt(self.cfg.attempts), wait=self._wait,
                            retry=retry_if_exception_type(_TransientFetch), reraise=True)
        try:
            retrying(download, uri, target)
        except _TransientFetch as err:
            raise FetchError("fetch_failed", f"{uri}: {err} (after {self.cfg.attempts} attempts)") from None

    def _download_http(self, uri: str, target: Path) -> None:
        # No redirects: a 3xx could point outside allowed_hosts. timeout_s bounds connect and each read.
        try:
            with requests.get(uri, stream=True, timeout=self.cfg.timeout_s, allow_redirects=False) as resp:
                if resp.status_code in MISSING_STATUS:
                    raise FetchError("missing_file", f"{uri}: HTTP {resp.status_code}")
                if resp.status_code in RETRIABLE_STATUS:
                    raise _TransientFetch(f"HTTP {resp.status_code}")
                if resp.status_code != 200:
                    raise FetchError("fetch_failed", f"{uri}: HTTP {resp.status_code}")
                self._check_size(int(resp.headers.get("Content-Length") or 0))
                self._copy(resp.iter_content(CHUNK), target)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            raise _TransientFetch(f"{type(err).__name__}: {err}") from None

    def _download_fsspec(self, uri: str, target: Path) -> None:
        try:
            fs, path = fsspec.core.url_to_fs(uri)
            self._check_size(int(fs.size(path) or 0))
            with fs.open(path, "rb") as src:
                self._copy(_chunks(src), target)
        except FileNotFoundError:
            raise FetchError("missing_file", f"no such object: {uri}") from None
        except (ConnectionError, TimeoutError) as err:
            raise _TransientFetch(f"{type(err).__name__}: {err}") from None

    def _check_size(self, size: int) -> None:
        if size > self.cfg.max_bytes:
            raise FetchError("too_large", f"{size} bytes > fetch.max_bytes={self.cfg.max_bytes}")

    def _copy(self, chunks: Iterable[bytes], target: Path) -> None:
        """Streams to `target`, enforcing the cap as bytes arrive (a server may lie or omit Content-Length)."""
        written = 0
        try:
            with target.open("wb") as out:
                for chunk in chunks:
                    written += len(chunk)
                    self._check_size(written)
                    out.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def _chunks(src: BinaryIO) -> Iterator[bytes]:
    while chunk := src.read(CHUNK):
        yield chunk


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(actual_hex: str, checksum: str | None) -> None:
    if checksum is not None and checksum != f"sha256:{actual_hex}":
        raise FetchError("checksum_mismatch", f"file has sha256:{actual_hex}, event says {checksum}")


def file_checksum(path: Path) -> str:
    """The event checksum of a local file ('sha256:<hex>'), as publishers compute it."""
    return f"sha256:{_sha256_file(path)}"
