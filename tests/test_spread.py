"""skyqa.training.spread and the sizing/splitting of skyqa.training.adapt: few labels name a whole map."""

from __future__ import annotations

import numpy as np

from skyqa.service.labels import Label
from skyqa.training.adapt import map_shape, split
from skyqa.training.spread import Spreading, propose, spread_labels, unlabelled_fraction

G, B = Label.GOOD, Label.BT


def _two_regions(nx: int = 4, ny: int = 4) -> Spreading:
    """A map whose left half and right half have prototypes far apart in the latent space."""
    k = np.arange(nx * ny)
    x = k % nx
    prototypes = np.stack([np.where(x < nx // 2, 0.0, 10.0) + 0.1 * x, 0.1 * (k // nx)], axis=1)
    return Spreading.of(prototypes, (nx, ny))


def test_two_labels_name_every_cell_of_their_region() -> None:
    spreading = _two_regions()
    cells = {"g": 0, "b": 3}  # one labelled exposure in the top-left and one in the top-right cell
    labels = spread_labels(spreading, cells, {"g": G, "b": B})
    assert len(labels.cells) == 16
    for cell in range(16):
        assert labels.label_of(cell) is (G if cell % 4 < 2 else B)
        assert 0.6 <= labels.cells[cell].confidence <= 1.0
    assert labels.cells[0].source == "vote" and labels.cells[0].members == 1 and labels.cells[0].purity == 1.0
    assert labels.cells[5].source == "spread" and labels.cells[5].members == 0
    assert unlabelled_fraction(labels, {"g": 0, "b": 3, "x": 7}) == (0.0, 0.0)


def test_a_cell_whose_members_disagree_stays_unlabelled() -> None:
    spreading = Spreading.of(np.zeros((9, 2)), (3, 3))  # every prototype alike: one region
    cells = {"g1": 4, "g2": 4, "b1": 4, "b2": 4}
    labels = spread_labels(spreading, cells, {"g1": G, "g2": G, "b1": B, "b2": B})
    assert labels.cells == {}
    assert unlabelled_fraction(labels, cells) == (1.0, 1.0)
    unanimous = spread_labels(spreading, cells, {"g1": G, "g2": G, "b1": B})  # 2 vs 1 reaching every cell
    assert unanimous.label_of(4) is G and unanimous.cells[4].confidence < 0.7


def test_propose_picks_distinct_exposures_that_cover_both_regions() -> None:
    spreading = _two_regions()
    cells = {f"e{i}": i for i in range(16)} | {f"f{i}": i for i in range(16)}
    chosen = propose(spreading, cells, labelled=set(), n=2)
    ids = [eid for eid, _, _ in chosen]
    assert len(set(ids)) == 2
    assert {cell % 4 < 2 for _, cell, _ in chosen} == {True, False}  # one in each region
    assert chosen[0][2] >= chosen[1][2] > 0
    more = propose(spreading, cells, labelled={"e0"}, n=40)  # more than there are unlabelled exposures
    assert len(more) == 31 and "e0" not in {eid for eid, _, _ in more}
    assert more[0][1] % 4 >= 2  # the left region is already named by e0


def test_map_sized_to_the_archive() -> None:
    assert map_shape(720, per_cell=20) == (6, 6)
    assert map_shape(50_000, per_cell=125) == (20, 20)
    assert map_shape(10, per_cell=20) == (3, 3) and map_shape(10**7, per_cell=1) == (20, 20)


def test_split_holds_out_part_of_every_class() -> None:
    truth = {f"g{i}": G for i in range(8)} | {f"b{i}": B for i in range(4)} | {"r": Label.RBT}
    naming, held = split(truth, 0.25, seed=0)
    assert set(naming) | set(held) == set(truth) and not set(naming) & set(held)
    assert sorted(held.values()) == sorted([G, G, B])  # 2 of 8, 1 of 4, none of a single exposure
    assert split(truth, 0.25, seed=0) == (naming, held)


def test_alpha_is_cross_validated_on_the_labels() -> None:
    from skyqa.training.spread import ALPHAS, choose_alpha

    nx = ny = 4
    k = np.arange(nx * ny)
    prototypes = np.stack([np.where(k % nx < 2, 0.0, 10.0), 0.1 * (k // nx)], axis=1)
    cells = {f"e{c}": c for c in k.tolist()}
    truth = {e: (G if c % nx < 2 else B) for e, c in cells.items()}
    alpha, agreement = choose_alpha(prototypes, (nx, ny), cells, truth, min_confidence=0.6)
    assert set(agreement) == set(ALPHAS) and alpha in ALPHAS
    assert agreement[alpha] == max(agreement.values()) == 1.0  # each half names its own held-out cells


def test_labels_beyond_the_cover_go_where_exposures_are_many_per_label() -> None:
    spreading = Spreading.of(np.zeros((4, 2)), (2, 2))  # one region: three labels cover the map
    cells = {f"a{i}": 0 for i in range(6)} | {f"b{i}": 1 for i in range(3)} | {"c": 2}
    chosen = propose(spreading, cells, labelled=set(), n=6)
    assert [cell for _, cell, _ in chosen[:3]] == [0, 1, 2] and all(gain > 0 for _, _, gain in chosen[:3])
    # then by archive exposures (+1) per label: cell 0 7/2, cell 0 7/3 over cell 1 4/2, then cell 1
    assert [(cell, gain) for _, cell, gain in chosen[3:]] == [(0, 0.0), (0, 0.0), (1, 0.0)]
