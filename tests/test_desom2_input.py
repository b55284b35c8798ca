"""DESOM-2's descriptor weighting: a share per feature group, stored in scaler.json, and old scaler files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyqa.cli import build_parser
from skyqa.service.pipeline.descriptor import BACKGROUND_FEATURES, FEATURES, SHAPE_FEATURES
from skyqa.service.pipeline.desom2_input import HISTO_BINS, Desom2Input, parse_share

RNG = np.random.default_rng(0)
VECTORS = RNG.poisson(5.0, (200, HISTO_BINS))
DESCRIPTORS = RNG.normal(3.0, 2.0, (200, len(FEATURES)))


def block_shares(scaler: Desom2Input) -> dict[str, float]:
    """Each group's share of the bins' total variance in the input the scaler builds."""
    x = scaler.transform(VECTORS, DESCRIPTORS).astype(np.float64)
    bins, described = x[:, :HISTO_BINS].var(axis=0).sum(), x[:, HISTO_BINS:].var(axis=0)
    columns = dict(zip(scaler.descriptor.features, described))
    return {group: sum(columns.get(f, 0.0) for f in features) / bins
            for group, features in (("background", BACKGROUND_FEATURES), ("shape", SHAPE_FEATURES))}


def test_each_group_carries_its_own_share_of_the_bins_variance() -> None:
    shares = block_shares(Desom2Input.fit(VECTORS, DESCRIPTORS, {"shape": 0.4, "background": 0.1}))
    assert shares == pytest.approx({"shape": 0.4, "background": 0.1}, rel=1e-4)


def test_one_number_spreads_over_every_feature_as_before() -> None:
    total = Desom2Input.fit(VECTORS, DESCRIPTORS, 0.25)
    assert total.descriptor.features == FEATURES
    assert block_shares(total) == pytest.approx({"background": 0.25 * 9 / 12, "shape": 0.25 * 3 / 12}, rel=1e-4)
    np.testing.assert_allclose(total.descriptor.weights, total.descriptor.weights[0])
    proportional = Desom2Input.fit(VECTORS, DESCRIPTORS, {"background": 0.25 * 9 / 12, "shape": 0.25 * 3 / 12})
    np.testing.assert_allclose(total.transform(VECTORS, DESCRIPTORS), proportional.transform(VECTORS, DESCRIPTORS),
                               rtol=1e-6)


def test_a_group_at_zero_is_left_out_of_the_input() -> None:
    shape_only = Desom2Input.fit(VECTORS, DESCRIPTORS, {"shape": 0.5, "background": 0.0})
    assert shape_only.descriptor.features == SHAPE_FEATURES
    assert shape_only.width == HISTO_BINS + len(SHAPE_FEATURES)
    assert Desom2Input.fit(VECTORS, DESCRIPTORS, {"shape": 0.0}).descriptor is None


def test_the_share_and_weights_round_trip_through_scaler_json(tmp_path) -> None:
    trained = Desom2Input.fit(VECTORS, DESCRIPTORS, {"shape": 0.5, "background": 0.1})
    path = trained.save(tmp_path / "scaler.json")
    assert json.loads(path.read_text())["descriptor"]["share"] == {"shape": 0.5, "background": 0.1}
    served = Desom2Input.load(path)
    assert served.descriptor.share == {"shape": 0.5, "background": 0.1}
    np.testing.assert_allclose(served.descriptor.weights, trained.descriptor.weights)
    np.testing.assert_allclose(served.transform(VECTORS, DESCRIPTORS), trained.transform(VECTORS, DESCRIPTORS),
                               rtol=1e-6)


def test_a_scaler_json_with_one_weight_still_loads(tmp_path) -> None:
    """Versions published before per-group shares wrote one `weight` and no share."""
    path = Desom2Input.fit(VECTORS, DESCRIPTORS, 0.25).save(tmp_path / "scaler.json")
    state = json.loads(path.read_text())
    del state["descriptor"]["weights"], state["descriptor"]["share"]
    state["descriptor"]["weight"] = 2.0
    path.write_text(json.dumps(state))
    old = Desom2Input.load(path)
    z = (DESCRIPTORS[:5] - old.descriptor.mean) / old.descriptor.std
    assert old.descriptor.share is None
    np.testing.assert_allclose(old.transform(VECTORS[:5], DESCRIPTORS[:5])[:, HISTO_BINS:], 2.0 * z, rtol=1e-5)


def test_the_share_option_takes_a_number_or_one_per_group() -> None:
    assert parse_share("0.25") == 0.25
    assert parse_share("shape=0.4, background=0.1") == {"shape": 0.4, "background": 0.1}
    with pytest.raises(ValueError, match="colour"):
        parse_share("colour=0.2")
    args = build_parser().parse_args(["adapt", "archive", "--out", "work", "--descriptor-share", "shape=0.5"])
    assert args.descriptor_share == {"shape": 0.5}
    assert build_parser().parse_args(["adapt", "archive", "--out", "work"]).descriptor_share == 0.25
