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
- the fraction of pixels at saturation (bleed trails, saturated cores);
- row banding: the spread of the jumps between neighbouring rows' medians in each half of the CCD (a readout
  amplifier's half) over what the white noise alone gives; ~1 on a clean sky, larger where a noisy amplifier or
  bias moves whole rows (a constant amplifier offset does not band; `amplifier_step` sees that).

The sky level in ADU includes the bias, which raw headers do not give, so a gradient cannot be measured as a
fraction of the sky from the levels alone. The sky's own photons can: with GAIN and RDNOISE, the white noise
gives the sky in ADU above the bias, gain x (white^2 - read noise^2) (Poisson in electrons). A gradient of 30%
of the sky is scattered light on any camera; 30 noise units is an ordinary moonlit sky on one with a deep well.

Per exposure (`describe`): medians / upper percentiles over CCDs, plus the spread of the CCDs' sky levels
across the mosaic (over the noise, and as a fraction of the sky), the saturated-detection fraction, the source
density and EXPTIME.

Three shape features come from the high-S/N sources `skyqa.service.pipeline.physical` measured: the seeing
(FWHM), the median elongation and the aligned ellipticity |<e exp(2i theta)>| (e = (a-b)/(a+b), a/b and theta from
adaptive moments, `skyqa.service.pipeline.moments`). The cutouts
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
    "relative_structure",  # log10(80th pct over CCDs of the mesh 5-95% spread / sky above bias + 1e-3)
    "relative_sky_spread",  # log10((90th - 10th pct of CCD sky levels) / sky above bias + 1e-3)
    "row_banding",  # log(95th pct over CCDs of the row-to-row median jumps' spread / white-noise expectation)
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
BANDING_PERCENTILE = 95.0  # banding on a few CCDs counts (4 of 24 seen); a star's halo does not band
SATURATION_FRACTION = 0.9
NOISE_ROWS = 16  # every 16th row for the white noise: ~0.02 CPU-s on a 4612 x 2048 CCD
SATURATION_STRIDE = (8, 2)  # (rows, columns) sampled for the saturated-pixel count: bleed trails are columns
BANDING_PAIRS = 96  # pairs of neighbouring rows sampled per band, at most one in 16 rows (~0.004 CPU-s a full CCD)
BANDING_COLUMNS = 4  # every 4th column
RELATIVE_FLOOR = 1e-3  # relative spreads are log-compressed above a 0.1% sky
ELONGATION_FLOOR = 0.01  # a/b - 1 is log-compressed above 1%
ALIGNED_FLOOR = 0.003  # the aligned ellipticity above 0.3%
# The measurement version at which a feature was last measured differently under the same name (a feature not named:
# since 1). 2: shape measures on compact sources only (fringes); 3: the FWHM is the mode of the sources' FWHMs
# (`skyqa.service.pipeline.physical.stellar_locus`); 4: a/b and theta from adaptive moments, not the isophote's
# (`skyqa.service.pipeline.moments`). Limits derived from older descriptors are in other units
# (`skyqa.service.calibration.Calibration.shape_check`).
MEASURED_SINCE = {"fwhm": 3, "elongation": 4, "aligned_ellipticity": 4}
# The latest of them: stored descriptors older than this are rebuilt (`skyqa adapt` keys its dataset on FEATURES
# and on it).
MEASUREMENT_VERSION = max(MEASURED_SINCE.values())


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
    banding: float = math.nan  # row-to-row median jumps' spread / white-noise expectation, the larger half
    gain: float | None = None  # e-/ADU (GAIN), None without the card

    @property
    def sky_adu(self) -> float | None:
        """The sky above the bias in ADU, from the white noise: gain x (white^2 - read noise^2); None where the
        cards are missing or the read noise explains the whole noise."""
        if not self.gain or self.read_noise_adu is None:
            return None
        sky = self.gain * (self.white_noise ** 2 - self.read_noise_adu ** 2)
        return sky if sky > 0 else None


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


def row_medians(sub: np.ndarray) -> np.ndarray:
    """(pairs, 2 rows, 2 halves): medians of the left and the right half (every `BANDING_COLUMNS`-th column) of
    ~`BANDING_PAIRS` pairs of neighbouring rows of a background-subtracted image. Two readout amplifiers side by
    side, as on MegaCam's CCDs; a one-amplifier CCD shows its banding in both halves."""
    every = int(np.clip(sub.shape[0] // BANDING_PAIRS, 2, 16))
    first = sub[:-1:every, ::BANDING_COLUMNS]
    second = sub[1::every, ::BANDING_COLUMNS]  # as many rows as `first`
    half = first.shape[1] // 2
    if half == 0:  # a CCD narrower than two sampled columns has no halves to compare
        return np.zeros((0, 2, 2))
    return np.stack([np.stack([np.median(rows[:, :half], axis=1), np.median(rows[:, half:], axis=1)], axis=1)
                     for rows in (first, second)], axis=1)


def row_banding(medians: np.ndarray, white: float, columns: int) -> float:
    """Robust spread (MAD) of the jumps between neighbouring rows' medians over what white noise gives them,
    sqrt(2) sqrt(pi/2) white / sqrt(n) for medians of n = `columns` // 2 // `BANDING_COLUMNS` pixels; the larger
    of the two halves; NaN when it cannot be measured. A jump from one row to the next is banding; fringes,
    gradients and galaxies change little over one row, so they do not count."""
    jumps = medians[:, 1] - medians[:, 0]
    jumps = jumps[np.isfinite(jumps).all(axis=1)]
    n = columns // 2 // BANDING_COLUMNS
    if len(jumps) < 8 or n < 1 or not white > 0.0:
        return math.nan
    spread = 1.4826 * np.median(np.abs(jumps - np.median(jumps, axis=0)), axis=0)
    return float(spread.max() / (math.sqrt(math.pi) * white / math.sqrt(n)))


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
        values["elongation"] = math.log10(max(metrics.elongation - 1.0, 0.0) + ELONGATION_FLOOR)
    if (aligned := aligned_ellipticity(sources)) is not None:
        values["aligned_ellipticity"] = math.log10(aligned + ALIGNED_FLOOR)
    return values


def shape_in_words(feature: str, value: float) -> str:
    """A shape feature's descriptor value as an operator reads it (the inverse of `shape_features`)."""
    if feature == "fwhm":
        return f'FWHM {10 ** value:.2f}"'
    if feature == "elongation":
        return f"median a/b {1.0 + max(10 ** value - ELONGATION_FLOOR, 0.0):.3f}"
    return f"aligned ellipticity {max(10 ** value - ALIGNED_FLOOR, 0.0):.3f}"


def background_features(ccds: Sequence[CCDBackground]) -> dict[str, float]:
    rms = np.array([c.rms for c in ccds])
    white = np.array([c.white_noise for c in ccds])
    levels = np.array([c.level for c in ccds])
    spread = float(np.percentile(levels, 90) - np.percentile(levels, 10))  # light across the mosaic, in ADU
    noise = float(np.median(rms))
    values = {
        "background_structure": math.log1p(np.percentile([c.structure for c in ccds], PERCENTILE)),
        "amplifier_step": math.log1p(max(0.0, float(np.percentile([c.step for c in ccds], PERCENTILE)))),
        "sky_spread": math.log1p(spread / noise) if noise > 0 else math.nan,
        "noise_excess": math.log(np.median(rms[white > 0] / white[white > 0])) if (white > 0).any() else math.nan,
        "bleed_fraction": math.log10(np.average([c.saturated_pixels for c in ccds],
                                                weights=[c.pixels for c in ccds]) + 1e-6),
        "source_density": math.log10(1e6 * sum(c.detections for c in ccds) / max(sum(c.pixels for c in ccds), 1) + 1),
    }
    shares = [(c.read_noise_adu / c.white_noise) ** 2 for c in ccds if c.read_noise_adu and c.white_noise > 0]
    if shares:
        values["read_noise_share"] = float(np.median(shares))
    banding = [c.banding for c in ccds if math.isfinite(c.banding)]
    if banding:
        values["row_banding"] = math.log(max(float(np.percentile(banding, BANDING_PERCENTILE)), 1e-3))
    return values | relative_features(ccds, spread)


def relative_features(ccds: Sequence[CCDBackground], spread: float) -> dict[str, float]:
    """The mesh spread and the mosaic's sky spread (`spread`, ADU) as fractions of the sky above the bias (needs
    GAIN, RDNOISE)."""
    skies = [(c, sky) for c in ccds if (sky := c.sky_adu) is not None]
    if not skies:
        return {}
    sky = float(np.median([s for _, s in skies]))
    return {
        "relative_structure": math.log10(np.percentile([c.structure * c.rms / s for c, s in skies], PERCENTILE)
                                         + RELATIVE_FLOOR),
        "relative_sky_spread": math.log10(spread / sky + RELATIVE_FLOOR),
    }


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
