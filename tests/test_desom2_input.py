"""DESOM-2's descriptor input: robust scaling, a share per feature group, stored in scaler.json, old scaler files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyqa.cli import build_parser
from skyqa.service.pipeline.descriptor import BACKGROUND_FEATURES, FEATURES, SHAPE_FEATURES
from skyqa.service.pipeline.desom2_input import HISTO_BINS, Z_LIMIT, DescriptorScaler, Desom2Input, parse_share

RNG = np.random.default_rng(0)
VECTORS = RNG.poisson(5.0, (200, HISTO_BINS))
DESCRIPTORS = RNG.normal(3.0, 2.0, (200, len(FEATURES)))


def unit_shift(scaler: Desom2Input, feature: str) -> float:
    """How far the input moves when `feature` moves by one unit of its scale (every other feature unmeasured)."""
    described = scaler.descriptor
    at = described.features.index(feature)
    row = np.full(len(FEATURES), np.nan)  # an unmeasured feature reads as its centre
    row[FEATURES.index(feature)] = described.centre[at] + described.scale[at]
    return float(np.linalg.norm(described.transform(row)))


def block_shares(scaler: Desom2Input) -> dict[str, float]:
    """Each group's share of the bins' total variance: its features' squared unit shifts over that variance."""
    bins = scaler.transform(VECTORS, DESCRIPTORS)[:, :HISTO_BINS].astype(np.float64).var(axis=0).sum()
    return {group: sum(unit_shift(scaler, f) ** 2 for f in features if f in scaler.descriptor.features) / bins
            for group, features in (("background", BACKGROUND_FEATURES), ("shape", SHAPE_FEATURES))}


def test_each_group_carries_its_own_share_of_the_bins_variance() -> None:
    shares = block_shares(Desom2Input.fit(VECTORS, DESCRIPTORS, {"shape": 0.4, "background": 0.1}))
    assert shares == pytest.approx({"shape": 0.4, "background": 0.1}, rel=1e-4)


def test_one_number_spreads_over_every_feature_as_before() -> None:
    total = Desom2Input.fit(VECTORS, DESCRIPTORS, 0.25)
    assert total.descriptor.features == FEATURES
    each = {"background": 0.25 * len(BACKGROUND_FEATURES) / len(FEATURES),
            "shape": 0.25 * len(SHAPE_FEATURES) / len(FEATURES)}
    assert block_shares(total) == pytest.approx(each, rel=1e-4)
    np.testing.assert_allclose(total.descriptor.weights, total.descriptor.weights[0])
    proportional = Desom2Input.fit(VECTORS, DESCRIPTORS, each)
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
    """Versions published before per-group shares wrote one `weight` and no share; before robust scaling, the
    centre and scale were called `mean` and `std`."""
    path = Desom2Input.fit(VECTORS, DESCRIPTORS, 0.25).save(tmp_path / "scaler.json")
    state = json.loads(path.read_text())
    described = state["descriptor"]
    del described["weights"], described["share"]
    described["weight"] = 2.0
    described["mean"], described["std"] = described.pop("centre"), described.pop("scale")
    path.write_text(json.dumps(state))
    old = Desom2Input.load(path)
    z = (DESCRIPTORS[:5] - old.descriptor.centre) / old.descriptor.scale
    assert old.descriptor.share is None
    np.testing.assert_allclose(old.transform(VECTORS[:5], DESCRIPTORS[:5])[:, HISTO_BINS:], 2.0 * z, rtol=1e-5)


def test_the_tails_do_not_set_the_scale() -> None:
    """Bad exposures are a feature's tails: a tenth of the archive far out must not squeeze the ordinary nine
    tenths into a fraction of a unit, and one absurd value is clipped."""
    ordinary = np.random.default_rng(1).normal(0.0, 1.0, (180, len(FEATURES)))
    trailed = ordinary[:20] + 50.0 * (np.arange(len(FEATURES)) == FEATURES.index("elongation"))
    archive = np.vstack([ordinary, trailed])
    scaler = DescriptorScaler.fit(archive, histo_variance=1.0, share=1.0)
    z = scaler.transform(archive) / scaler.weights
    at = FEATURES.index("elongation")
    assert 0.6 < z[:180, at].std() < 1.25  # ~0.86: the tail still lifts the upper quartile a little
    np.testing.assert_allclose(z[180:, at], Z_LIMIT, rtol=1e-6)
    standard = (archive[:180, at] - archive[:, at].mean()) / archive[:, at].std()
    assert standard.std() < 0.2  # what mean and standard deviation would have made of the ordinary ones


def test_a_mostly_constant_feature_takes_its_standard_deviation_and_an_unmeasured_one_reads_zero() -> None:
    archive = np.random.default_rng(2).normal(0.0, 1.0, (100, len(FEATURES)))
    saturated = FEATURES.index("saturated_fraction")
    archive[:, saturated] = np.where(np.arange(100) < 90, 0.0, 40.0)  # at its floor on most exposures
    archive[:, FEATURES.index("bleed_fraction")] = np.nan
    scaler = DescriptorScaler.fit(archive, histo_variance=1.0, share=1.0)
    assert scaler.scale[saturated] == pytest.approx(archive[:, saturated].std())
    z = scaler.transform(archive)
    assert np.isfinite(z).all()
    assert (z[:, FEATURES.index("bleed_fraction")] == 0).all()


def test_the_share_option_takes_a_number_or_one_per_group() -> None:
    assert parse_share("0.25") == 0.25
    assert parse_share("shape=0.4, background=0.1") == {"shape": 0.4, "background": 0.1}
    with pytest.raises(ValueError, match="colour"):
        parse_share("colour=0.2")
    args = build_parser().parse_args(["adapt", "archive", "--out", "work", "--descriptor-share", "shape=0.5"])
    assert args.descriptor_share == {"shape": 0.5}
    assert build_parser().parse_args(["adapt", "archive", "--out", "work"]).descriptor_share == \
        {"shape": 1.0, "background": 0.5}
