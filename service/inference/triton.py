"""DESOM inference on a Triton server (gRPC by default, HTTP optional), pinned to one model version.

Transient failures (server restarting, connection refused/reset) are retried with jittered exponential backoff,
but only until `timeout_s` has passed since the batch's first attempt: the daemon must fail an exposure
in bounded time rather than hang behind a dead server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_delay, wait_random_exponential
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from skyqa.service.config import InferenceConfig
from skyqa.service.inference.base import Contract, check_input, empty_result
from skyqa.service.stream.metrics import TRITON_FAILURES, TRITON_SECONDS

# gRPC status codes / HTTP status strings worth another attempt (server (re)starting or shutting down).
# Not retried: NOT_FOUND/404 (unknown model or version), INVALID_ARGUMENT/400 (a bug on this side).
TRANSIENT_STATUS = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "503"}


class TritonUnavailableError(RuntimeError):
    """The server stayed unreachable (or the model unloaded) for the whole retry budget."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, InferenceServerException):
        return exc.status() in TRANSIENT_STATUS
    return isinstance(exc, (ConnectionError, TimeoutError))  # HTTP client: refused/reset, socket timeouts


class TritonSomModel:
    """SomModel backed by Triton; splits input into requests of at most min(batch_size, server max_batch_size)."""

    def __init__(self, cfg: InferenceConfig, contract: Contract, *, name: str, version: str,
                 max_wait_s: float = 2.0):
        self.name, self.version, self.contract = name, version, contract
        self.url, self.protocol = cfg.triton_url, cfg.protocol
        self._timeout_s = cfg.timeout_s
        self._batch_size = cfg.batch_size
        self._wait = wait_random_exponential(multiplier=0.05, max=max_wait_s)
        self._client: Any
        if cfg.protocol == "grpc":
            self._module: Any = grpcclient
            self._client = grpcclient.InferenceServerClient(cfg.triton_url)
        else:
            self._module = httpclient
            self._client = httpclient.InferenceServerClient(
                cfg.triton_url, connection_timeout=cfg.timeout_s, network_timeout=cfg.timeout_s
            )
        self._max_batch: int | None = None

    def _call_kwargs(self) -> dict[str, float]:
        return {"client_timeout": self._timeout_s} if self.protocol == "grpc" else {}

    def _retrying(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:
        retrying = Retrying(stop=stop_after_delay(self._timeout_s), wait=self._wait,
                            retry=retry_if_exception(_transient))
        try:
            return retrying(fn, *args, **kwargs)
        except RetryError as err:
            attempts = err.last_attempt.attempt_number
            raise TritonUnavailableError(
                f"Triton {self.protocol}://{self.url} {what} {self.name}/{self.version} failed after {attempts} "
                f"attempts in {self._timeout_s:g} s: {err.last_attempt.exception()}"
            ) from err.last_attempt.exception()

    def model_config(self) -> dict[str, Any]:
        """The model configuration the server actually loaded, as JSON (same shape for gRPC and HTTP)."""
        if self.protocol == "grpc":
            return self._retrying("config", self._client.get_model_config, self.name, self.version,
                                  as_json=True, **self._call_kwargs())["config"]
        return self._retrying("config", self._client.get_model_config, self.name, self.version)

    def is_ready(self) -> bool:
        """Server ready and this model version loaded; False (never raises) when unreachable."""
        try:
            kwargs = self._call_kwargs()
            return bool(self._client.is_server_ready(**kwargs)
                        and self._client.is_model_ready(self.name, self.version, **kwargs))
        except (InferenceServerException, ConnectionError, TimeoutError):
            return False

    def _infer_once(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inp = self._module.InferInput(self.contract.input.name, list(batch.shape), np_to_triton_dtype(batch.dtype))
        inp.set_data_from_numpy(batch)
        outputs = [self._module.InferRequestedOutput(o.name) for o in self.contract.outputs]
        with TRITON_SECONDS.labels(model=self.name).time():
            try:
                result = self._client.infer(self.name, [inp], model_version=self.version, outputs=outputs,
                                            **self._call_kwargs())
            except Exception:
                TRITON_FAILURES.labels(model=self.name).inc()
                raise
        # Per-sample scalars come back as (n, 1) (config dims [1], reshape []).
        index = result.as_numpy(self.contract.index.name).reshape(-1).astype(np.int64, copy=False)
        distance = result.as_numpy(self.contract.distance.name).reshape(-1).astype(np.float32, copy=False)
        return index, distance

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = check_input(self.contract, x)
        if not len(x):
            return empty_result()
        if self._max_batch is None:  # a request larger than the server's max_batch_size would be rejected
            server_max = int(self.model_config().get("max_batch_size", 0)) or self._batch_size
            self._max_batch = min(self._batch_size, server_max)
        parts = [self._retrying("infer", self._infer_once, x[i : i + self._max_batch])
                 for i in range(0, len(x), self._max_batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def close(self) -> None:
        self._client.close()
