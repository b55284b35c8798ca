"""skyqa.service.pipeline.physical: which sources the shape measures (FWHM, elongation) are taken on."""

from __future__ import annotations

import numpy as np

from skyqa.service.pipeline.physical import MAX_SHAPE_SOURCES, measure_sources


def _objects(n: int) -> np.ndarray:
    """n unflagged, unsaturated, high-S/N sources whose axis ratio a/b = 1 + rank / 1000 names their flux rank."""
    objects = np.zeros(n, dtype=[(f, float) for f in ("x", "y", "a", "b", "theta", "flux", "peak")] +
                       [("npix", int), ("flag", int)])
    rng = np.random.default_rng(0)
    objects["x"], objects["y"] = rng.uniform(20, 180, n), rng.uniform(20, 180, n)
    objects["flux"] = np.linspace(1e4, 1e6, n)  # rank = index
    objects["npix"], objects["peak"], objects["b"] = 20, 1000.0, 1.0
    objects["a"] = 1.0 + np.arange(n) / 1000.0
    return objects


def test_shape_sources_are_a_draw_of_the_good_ones_not_the_brightest():
    """The brightest 100 of a whole CCD are another population than those of a few hundred rows: a draw keeps the
    FWHM of the band search and of every row the same."""
    sub, objects = np.zeros((200, 200), np.float32), _objects(4 * MAX_SHAPE_SOURCES)
    measures = measure_sources(sub, objects, 0.0, 1.0, 65535.0, np.random.default_rng(1))
    ranks = np.round((measures.elongation - 1.0) * 1000.0).astype(int)
    assert len(ranks) == MAX_SHAPE_SOURCES == len(set(ranks))
    assert ranks.min() < MAX_SHAPE_SOURCES and np.median(ranks) < 3 * MAX_SHAPE_SOURCES  # faint ones too
    again = measure_sources(sub, objects, 0.0, 1.0, 65535.0, np.random.default_rng(1))
    np.testing.assert_array_equal(again.elongation, measures.elongation)


def test_every_good_source_is_measured_when_there_are_few():
    sub, objects = np.zeros((200, 200), np.float32), _objects(MAX_SHAPE_SOURCES // 2)
    measures = measure_sources(sub, objects, 0.0, 1.0, 65535.0, np.random.default_rng(1))
    np.testing.assert_array_equal(measures.elongation, objects["a"])
