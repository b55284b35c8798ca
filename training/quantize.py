"""An int8 copy of an exported DESOM-1 for CPU serving (issue 11): `model.int8.onnx` beside `model.onnx`.

Static QDQ quantisation (onnxruntime.quantization), weights int8 per output channel, activations uint8 calibrated
on real cutouts (the 99.999th percentile of each activation, so a few bright outliers do not coarsen the step
for the rest). The convolutions and the first dense layer run as int8 kernels; the weights use 7 of the 8 bits
(`reduce_range`): on x86 CPUs without VNNI (AVX2 only) onnxruntime's uint8 x int8 kernels add products in
saturating 16-bit pairs, and with full-range weights only 29.8% of the unseen site's cutouts kept their float
BMU on such a CPU (94.9% with 7-bit weights). The latent layer and the SOM distances stay float: quantising the
latent vector moves the arg-min between near-equal prototypes (desom1 v2, the 72,000 cutouts of the calibration
night: 95.2% same BMU with it quantised, 96.8% without).

Serving needs only onnxruntime; this module needs the `onnx` package (training extras).

    python -m skyqa.training.quantize models/desom1/2 EXPOSURE_OR_DIR...   # calibrate on exposures' cutouts
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

INT8_FILE = "model.int8.onnx"
CALIBRATION_CUTOUTS = 4096
_BATCH = 256  # the percentile calibrator stacks batches: every batch must have the same size
_PERCENTILE = 99.999


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, cutouts: np.ndarray, batch: int) -> None:
        self._batches = iter({input_name: cutouts[i : i + batch]} for i in range(0, len(cutouts), batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def float_tail(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes kept float: the latent layer and everything after it (the SOM distances, arg-min).

    The latent vector is what the SOM-distance part (ReduceSumSquare) reads; the exported graph is in
    topological order, so the tail starts at the node producing it. Unnamed nodes get their output's name."""
    nodes = model.graph.node
    for node in nodes:
        node.name = node.name or node.output[0]
    latent = next(n.input[0] for n in nodes if n.op_type == "ReduceSumSquare")
    start = next(i for i, n in enumerate(nodes) if latent in n.output)
    return [n.name for n in nodes[start:]]


def quantize_desom1(model_path: Path, cutouts: np.ndarray, out: Path) -> Path:
    """Writes the int8 copy of the DESOM-1 graph at `model_path` to `out`, calibrated on `cutouts` (N, 32, 32, 1)."""
    model = onnx.load(str(model_path))
    if len(cutouts) == 0:
        raise ValueError("calibration needs cutouts")
    batch = min(_BATCH, len(cutouts))
    x = np.ascontiguousarray(cutouts[: len(cutouts) // batch * batch], dtype=np.float32)
    exclude = float_tail(model)
    quantize_static(model, str(out), _Batches(model.graph.input[0].name, x, batch), quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": _PERCENTILE})
    return out


def exposure_cutouts(files: list[Path], n: int, seed: int = 0) -> np.ndarray:
    """A seeded sample of `n` cutouts from exposures, through the serving preprocessing."""
    from skyqa.service.config import load_settings
    from skyqa.service.pipeline.preprocess import prepare_exposure

    settings = load_settings()
    cutouts = np.concatenate([prepare_exposure(f, settings).cutouts for f in files])
    if len(cutouts) < n:
        raise ValueError(f"{len(files)} exposures hold {len(cutouts)} cutouts, fewer than {n}")
    return cutouts[np.sort(np.random.default_rng(seed).choice(len(cutouts), n, replace=False))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write model.int8.onnx beside a DESOM-1 version's model.onnx")
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("exposures", type=Path, nargs="+", help="exposure files or directories of them")
    parser.add_argument("--n", type=int, default=CALIBRATION_CUTOUTS, help="calibration cutouts")
    args = parser.parse_args(argv)
    files = sorted(f for p in args.exposures for f in ([p] if p.is_file() else p.glob("*.fits*")))
    cutouts = exposure_cutouts(files, args.n)
    print(quantize_desom1(args.version_dir / "model.onnx", cutouts, args.version_dir / INT8_FILE))


if __name__ == "__main__":
    main()
