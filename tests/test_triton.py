"""Triton path == local onnxruntime path, against the real tritonserver; committed configs == generator."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from skyqa.service.config import InferenceConfig, ModelsConfig, Settings
from skyqa.service.inference import DESOM1, DESOM2, Contract, SomModel, open_models
from skyqa.service.inference.local import LocalSomModel
from skyqa.service.inference.triton import TritonSomModel, TritonUnavailableError
from skyqa.service.modelrepo import resolve_version
from skyqa.service.inference.triton_repository import SPECS, render
from tests.onnx_factory import write_models
from tests.triton_fixture import TritonServer, free_ports, triton_server  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ("grpc", "http")


def _batch(contract: Contract, n: int, seed: int) -> np.ndarray:
    shape = tuple(625 if d == -1 else d for d in contract.input.shape)  # the test models' DESOM-2 width
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _triton(server: TritonServer, protocol: str, contract: Contract, version: str = "2",
            **cfg: object) -> TritonSomModel:
    config = InferenceConfig(mode="triton", triton_url=server.url(protocol), protocol=protocol, **cfg)
    return TritonSomModel(config, contract, name=contract.name, version=version)


# --- plain unit tests -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.contract.name)
def test_committed_production_configs_are_generated(spec) -> None:
    committed = (ROOT / "models" / spec.contract.name / "config.pbtxt").read_text()
    assert committed == render(spec, local=False), "run: python -m skyqa.service.inference.triton_repository production"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.contract.name)
def test_local_and_production_configs_differ_only_in_runtime(spec) -> None:
    def serving(text: str) -> list[str]:
        runtime = ("platform:", "backend:", "kind:", "parameters")
        return [line for line in text.splitlines() if not line.strip().startswith(runtime)]

    local = render(spec, local=True, parameters={"site_packages": "/x"})
    production = render(spec, local=False)
    assert serving(local) == serving(production)
    assert 'backend: "python"' in local and "KIND_CPU" in local
    assert 'platform: "onnxruntime_onnx"' in production and "KIND_GPU" in production
    assert ("dynamic_batching" in production) == spec.dynamic_batching


def test_resolve_version(tmp_path: Path) -> None:
    write_models(tmp_path, versions=(1, 2, 10))
    (tmp_path / "desom1" / "notes").mkdir()
    assert resolve_version(tmp_path, "desom1", "latest") == ("10", tmp_path / "desom1" / "10")
    assert resolve_version(tmp_path, "desom1", "2")[0] == "2"
    with pytest.raises(FileNotFoundError, match="version '3'"):
        resolve_version(tmp_path, "desom1", "3")
    with pytest.raises(FileNotFoundError):
        resolve_version(tmp_path, "missing", "latest")


def test_local_models_follow_contract(tmp_path: Path) -> None:
    write_models(tmp_path)
    settings = Settings(models=ModelsConfig(repository=tmp_path), inference=InferenceConfig(batch_size=5, threads=1))
    desom1, desom2 = open_models(settings)
    try:
        for model, contract in ((desom1, DESOM1), (desom2, DESOM2)):
            assert isinstance(model, SomModel) and model.version == "2"
            x = _batch(contract, 13, seed=1)
            index, distance = model.predict(x)
            assert index.dtype == np.int64 and distance.dtype == np.float32 and index.shape == distance.shape == (13,)
            one = [model.predict(x[i : i + 1]) for i in range(13)]  # batching must not change results
            np.testing.assert_array_equal(index, np.concatenate([o[0] for o in one]))
            np.testing.assert_allclose(distance, np.concatenate([o[1] for o in one]), rtol=1e-5)
            assert model.predict(x[:0])[0].shape == (0,)
    finally:
        desom1.close()
        desom2.close()


# --- against the real tritonserver ------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("contract", (DESOM1, DESOM2), ids=lambda c: c.name)
def test_triton_matches_local_onnxruntime(triton_server: TritonServer, protocol: str, contract: Contract) -> None:
    version, directory = resolve_version(triton_server.models, contract.name, "latest")
    local = LocalSomModel(directory / "model.onnx", contract, name=contract.name, version=version,
                          batch_size=512, threads=1)
    remote = _triton(triton_server, protocol, contract, version=version)
    try:
        assert remote.is_ready()
        for n in (1, 7, 600):  # 600 > both models' max_batch_size: split into several requests
            x = _batch(contract, n, seed=n)
            want, got = local.predict(x), remote.predict(x)
            assert got[0].dtype == np.int64 and got[1].dtype == np.float32 and got[0].shape == (n,)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    finally:
        local.close()
        remote.close()


@pytest.mark.integration
def test_factory_opens_latest_versions_on_triton(triton_server: TritonServer) -> None:
    settings = Settings(models=ModelsConfig(repository=triton_server.models),
                        inference=InferenceConfig(mode="triton", triton_url=triton_server.grpc_url))
    desom1, desom2 = open_models(settings)
    try:
        assert isinstance(desom1, TritonSomModel) and isinstance(desom2, TritonSomModel)
        assert (desom1.version, desom2.version) == ("2", "2")
        assert desom1.is_ready() and desom2.is_ready()
    finally:
        desom1.close()
        desom2.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dynamic_batching_is_live(triton_server: TritonServer, protocol: str) -> None:
    spec = next(s for s in SPECS if s.contract is DESOM1)
    model = _triton(triton_server, protocol, DESOM1)
    try:
        config = model.model_config()
        assert int(config["max_batch_size"]) == spec.max_batch_size
        batching = config["dynamic_batching"]
        assert [int(b) for b in batching["preferred_batch_size"]] == list(spec.preferred_batch_sizes)
        assert int(batching["max_queue_delay_microseconds"]) == spec.max_queue_delay_us
        assert [o["name"] for o in config["output"]] == ["bmu", "distance"]
    finally:
        model.close()


@pytest.mark.integration
def test_concurrent_requests_are_batched_and_split_back(triton_server: TritonServer) -> None:
    """Concurrent requests are merged by the dynamic batcher; each caller still gets exactly its own rows."""
    version, directory = resolve_version(triton_server.models, "desom1", "1")
    local = LocalSomModel(directory / "model.onnx", DESOM1, name="desom1", version=version, batch_size=512, threads=1)
    remote = _triton(triton_server, "grpc", DESOM1, version="1")
    inputs = [_batch(DESOM1, 3 + i, seed=100 + i) for i in range(16)]
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(remote.predict, inputs))
        for x, (index, distance) in zip(inputs, results):
            want = local.predict(x)
            np.testing.assert_array_equal(index, want[0])
            np.testing.assert_allclose(distance, want[1], rtol=1e-5)
        client = grpcclient.InferenceServerClient(triton_server.grpc_url)
        stats = client.get_inference_statistics("desom1", "1", as_json=True)["model_stats"][0]
        client.close()
        assert int(stats["inference_count"]) == sum(len(x) for x in inputs)
        assert int(stats["execution_count"]) < len(inputs)  # several requests per model execution
    finally:
        local.close()
        remote.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_version_is_not_ready(triton_server: TritonServer, protocol: str) -> None:
    model = _triton(triton_server, protocol, DESOM1, version="99")
    try:
        assert not model.is_ready()
        start = time.monotonic()
        with pytest.raises(InferenceServerException, match="unknown model"):  # a permanent error: no retries
            model.predict(_batch(DESOM1, 2, seed=0))
        assert time.monotonic() - start < 1.0
    finally:
        model.close()


@pytest.mark.integration
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_server_down_not_ready_and_bounded_retries(protocol: str) -> None:
    (port,) = free_ports(1)
    config = InferenceConfig(mode="triton", triton_url=f"127.0.0.1:{port}", protocol=protocol, timeout_s=1.5)
    model = TritonSomModel(config, DESOM1, name="desom1", version="1", max_wait_s=0.2)

    def failures() -> float:
        return REGISTRY.get_sample_value("skyqa_triton_failures_total", {"model": "desom1"}) or 0.0

    try:
        assert not model.is_ready()
        before, start = failures(), time.monotonic()
        model._max_batch = 512  # skip the config look-up: exercise the retries of infer itself
        expected = rf"127\.0\.0\.1:{port} infer desom1/1 failed after \d+ attempts"
        with pytest.raises(TritonUnavailableError, match=expected):
            model.predict(_batch(DESOM1, 4, seed=0))
        assert time.monotonic() - start < 5.0
        assert failures() - before >= 2  # every failed attempt is counted
    finally:
        model.close()
