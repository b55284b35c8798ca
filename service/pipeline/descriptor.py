"""The exposure descriptor: a few numbers per exposure that describe its sky and its point-spread function.

DESOM-1 sees min-max normalised 32 x 32 cutouts, so the histo-vector cannot tell a scattered-light
gradient, an amplifier offset, a crowded field or a 2 s exposure from a Good one. These numbers, all
from what detection already measured, go into DESOM-2's input beside the 625 bins
(`skyqa.service.pipeline.desom2_input`), so such exposures can form cells of their own that the expert
names like any other, instead of being caught by fixed limits beside the map.

Per CCD, in the worker that holds the pixels (`measure_background`):
- the background mesh (sep's 64 px meshes) as a grid: its spread and its largest column-to-column jump
  (an amplifier boundary) over the sky noise;
- the white (pixel-to-pixel) noise from first differences along rows, beside sep's sky RMS: structure at
  mesh scale and below (fringes, unresolved crowding, patterns) raises the RMS but not the differences;
- the read-noise share of the white-noise variance from the header's GAIN and RDNOISE: near 1 for a
  short exposure whose sky adds few photons, small for a sky-limited one. (Raw headers carry no bias
  level, so the sky's Poisson term cannot be predicted from the sky level; the share needs only the noise.)
- the fraction of pixels at saturation (bleed trails, saturated cores).

Per exposure (`describe`): medians / upper percentiles over CCDs, plus the spread of the CCDs' sky levels
across the mosaic, the saturated-detection fraction, the source density and EXPTIME.

Three shape features come from the high-S/N sources `skyqa.service.pipeline.physical` measured: the seeing
(FWHM), the median elongation and the aligned ellipticity |<e exp(2i theta)>| (e = (a-b)/(a+b)). The cutouts
are min-max normalised 32 x 32 stamps, on which a 3-8 px tracking trail under a 4-6 px seeing disc is a
small change in shape; over a few thousand sources it is an unmistakable one, and in one direction: a
tracking error stretches every source the same way, while noise, blends and field aberrations point every
way and cancel in the mean (issue 9's hard pair: mild trails against Good). Values are
log-compressed so the per-version standardisation sees roughly symmetric distributions; a value that
cannot be measured is NaN (standardised to the training centre).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skyqa.service.pipeline.physical import SourceMeasures
from skyqa.service.verdict import PhysicalMetrics

FEATURES = (
    "background_structure",  # log1p(80th pct over CCDs of the mesh 5-95% spread / sky RMS)
    "amplifier_step",  # log1p(80th pct over CCDs of the largest mesh column jump above the typical one / RMS)
    "sky_spread",  # log1p((90th - 10th pct of CCD sky levels) / median RMS): mosaic-scale light
    "noise_excess",  # log(median over CCDs of sky RMS / white pixel noise)
    "read_noise_share",  # median (RDNOISE/GAIN)^2 / white-noise variance: short, read-noise-limited exposures
    "saturated_fraction",  # log10(saturated detections / detections + 1e-4)
    "bleed_fraction",  # log10(pixels at >= 90% of SATURATE / pixels + 1e-6)
    "source_density",  # log10(detections per megapixel searched + 1)
    "exptime",  # log10(EXPTIME / 1 s)
    "fwhm",  # log10(stellar-locus FWHM / 1 arcsec)
    "elongation",  # log10(median a/b - 1 + 0.01)
    "aligned_ellipticity",  # log10(|mean e exp(2i theta)| + 0.003) over the high-S/N sources of every CCD
)
SHAPE_FEATURES = ("fwhm", "elongation", "aligned_ellipticity")
BACKGROUND_FEATURES = tuple(f for f in FEATURES if f not in SHAPE_FEATURES)
GROUPS = {"background": BACKGROUND_FEATURES, "shape": SHAPE_FEATURES}  # a DESOM-2 input share can be set per group
PERCENTILE = 80.0  # a problem on a fifth of the mosaic counts, one CCD's bright halo does not
SATURATION_FRACTION = 0.9
NOISE_ROWS = 16  # every 16th row for the white noise: ~0.02 CPU-s on a 4612 x 2048 CCD
SATURATION_STRIDE = (8, 2)  # (rows, columns) sampled for the saturated-pixel count: bleed trails are columns


@dataclass(frozen=True)
class CCDBackground:
    """What one CCD contributes to the descriptor (in ADU where not a ratio)."""

    level: float  # sep global background
    rms: float  # sep global RMS
    structure: float  # mesh 5-95% spread / rms
    step: float  # largest mesh column jump above the median jump / rms
    white_noise: float  # pixel-to-pixel noise, ADU
    read_noise_adu: float | None  # RDNOISE / GAIN, None without those cards
    saturated_pixels: float  # fraction of (sampled) pixels at >= 90% of SATURATE
    pixels: int  # searched pixels
    detections: int


def column_step(mesh: np.ndarray, rms: float) -> float:
    """Largest jump between neighbouring mesh columns above the median jump, over the pixel RMS.

    A smooth gradient raises every jump alike; an amplifier offset raises one."""
    if mesh.ndim != 2 or mesh.shape[1] < 3 or not rms > 0.0:
        return 0.0
    jumps = np.abs(np.diff(np.median(mesh, axis=0)))
    return float((jumps.max() - np.median(jumps)) / rms)


def white_noise(sub: np.ndarray) -> float:
    """Robust pixel-to-pixel noise of a background-subtracted image: MAD of first differences along rows / sqrt 2."""
    rows = sub[::NOISE_ROWS]
    diff = (rows[:, 1:] - rows[:, :-1]).ravel()
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / math.sqrt(2.0))


def saturated_pixel_fraction(raw: np.ndarray, saturate: float) -> float:
    """Fraction of sampled pixels at >= 90% of the saturation level (before background subtraction)."""
    sample = raw[:: SATURATION_STRIDE[0], :: SATURATION_STRIDE[1]]
    return float(np.count_nonzero(sample >= SATURATION_FRACTION * saturate) / max(sample.size, 1))


def read_noise_adu(gain: float | None, read_noise: float | None) -> float | None:
    return read_noise / gain if gain and read_noise else None


def aligned_ellipticity(sources: Sequence[SourceMeasures]) -> float | None:
    """|mean of e exp(2i theta)| over all measured sources, e = (a-b)/(a+b) = (q-1)/(q+1) for q = a/b."""
    q = np.concatenate([s.elongation for s in sources]) if sources else np.zeros(0)
    theta = np.concatenate([s.theta for s in sources]) if sources else np.zeros(0)
    if q.size == 0:
        return None
    return float(np.abs(np.mean((q - 1.0) / (q + 1.0) * np.exp(2j * theta))))


def shape_features(sources: Sequence[SourceMeasures], metrics: PhysicalMetrics) -> dict[str, float]:
    values = {}
    if metrics.fwhm_arcsec and metrics.fwhm_arcsec > 0:
        values["fwhm"] = math.log10(metrics.fwhm_arcsec)
    if metrics.elongation is not None:
        values["elongation"] = math.log10(max(metrics.elongation - 1.0, 0.0) + 0.01)
    if (aligned := aligned_ellipticity(sources)) is not None:
        values["aligned_ellipticity"] = math.log10(aligned + 0.003)
    return values


def background_features(ccds: Sequence[CCDBackground]) -> dict[str, float]:
    rms = np.array([c.rms for c in ccds])
    white = np.array([c.white_noise for c in ccds])
    levels = np.array([c.level for c in ccds])
    noise = float(np.median(rms))
    values = {
        "background_structure": math.log1p(np.percentile([c.structure for c in ccds], PERCENTILE)),
        "amplifier_step": math.log1p(max(0.0, float(np.percentile([c.step for c in ccds], PERCENTILE)))),
        "sky_spread": math.log1p((np.percentile(levels, 90) - np.percentile(levels, 10)) / noise) if noise > 0
        else math.nan,
        "noise_excess": math.log(np.median(rms[white > 0] / white[white > 0])) if (white > 0).any() else math.nan,
        "bleed_fraction": math.log10(np.average([c.saturated_pixels for c in ccds],
                                                weights=[c.pixels for c in ccds]) + 1e-6),
        "source_density": math.log10(1e6 * sum(c.detections for c in ccds) / max(sum(c.pixels for c in ccds), 1) + 1),
    }
    shares = [(c.read_noise_adu / c.white_noise) ** 2 for c in ccds if c.read_noise_adu and c.white_noise > 0]
    if shares:
        values["read_noise_share"] = float(np.median(shares))
    return values


def describe(ccds: Sequence[CCDBackground], sources: Sequence[SourceMeasures], metrics: PhysicalMetrics) -> np.ndarray:
    """The exposure's descriptor, float32 in `FEATURES` order (NaN where it cannot be measured), from the usable
    CCDs' backgrounds and source measures and the exposure metrics summarised from them."""
    values = shape_features(sources, metrics) | (background_features(ccds) if ccds else {})
    if metrics.exptime_s is not None and metrics.exptime_s > 0:
        values["exptime"] = math.log10(metrics.exptime_s)
    if metrics.saturated_fraction is not None:
        values["saturated_fraction"] = math.log10(metrics.saturated_fraction + 1e-4)
    out = np.full(len(FEATURES), np.nan, np.float32)
    for name, value in values.items():
        out[FEATURES.index(name)] = value
    return out
