"""Prometheus metrics of the daemon: base units, no exposure ids as label values.

Dashboards (deploy/grafana) and alerts (deploy/prometheus) are written against these names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from skyqa.service.labels import Label

# Sub-second stages up to a slow network pull of a 700 MiB file: 10 ms .. 15 min.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900)
COUNT_BUCKETS = (0, 10, 100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000)

EVENTS_CONSUMED = Counter("skyqa_events_consumed_total", "New-exposure events read from Kafka or the watched directory")
VERDICTS = Counter("skyqa_verdicts_total", "Verdicts published, by curated label", ["label"])
VERDICT_CELLS = Counter("skyqa_verdict_cells_total", "Verdicts published, by DESOM-2 cell", ["cell_x", "cell_y"])
DUPLICATE_VERDICTS = Counter("skyqa_duplicate_verdicts_total", "Events processed again after a restart (identical verdict)")
ERRORS = Counter("skyqa_errors_total", "Processing failures, by stage and machine-readable reason", ["stage", "reason"])
PROCESSING_ERRORS = Counter(
    "skyqa_processing_errors_total",
    "Unexpected exceptions while processing an exposure's file: 'retried', or 'dead_lettered' as processing_error",
    ["outcome"],
)
for _outcome in ("retried", "dead_lettered"):  # series exist at 0 from the start: increase() sees the first one
    PROCESSING_ERRORS.labels(outcome=_outcome)
DEAD_LETTERS = Counter("skyqa_dead_letters_total", "Events sent to the dead-letter topic, by reason", ["reason"])
STAGE_SECONDS = Histogram(
    "skyqa_stage_duration_seconds", "Wall time of one pipeline stage for one exposure", ["stage"], buckets=LATENCY_BUCKETS
)
END_TO_END_SECONDS = Histogram(
    "skyqa_end_to_end_latency_seconds",
    "From the event's timestamp (end of readout) or from its receipt to the verdict acknowledged by the broker",
    ["since"],  # "event" | "receipt"
    buckets=LATENCY_BUCKETS,
)
DETECTIONS = Histogram("skyqa_exposure_detections", "Detected sources per exposure (W)", buckets=COUNT_BUCKETS)
CUTOUTS = Histogram("skyqa_exposure_cutouts", "Cutouts sent to DESOM-1 per exposure", buckets=COUNT_BUCKETS)
LAST_FWHM = Gauge("skyqa_last_exposure_fwhm_arcsec", "Median FWHM of the last classified exposure")
LAST_ELONGATION = Gauge("skyqa_last_exposure_elongation_ratio", "Median source elongation a/b of the last exposure")
LAST_BACKGROUND = Gauge("skyqa_last_exposure_background_adu", "Median sky background of the last exposure")
LAST_BACKGROUND_RMS = Gauge("skyqa_last_exposure_background_rms_adu", "Median sky RMS of the last exposure")
LAST_BACKGROUND_STRUCTURE = Gauge("skyqa_last_exposure_background_structure",
                                  "Spread of the smooth background within a CCD of the last exposure, in pixel-noise units")
LAST_DISTANCE = Gauge("skyqa_last_exposure_novelty", "Distance of the last exposure to its DESOM-2 cell prototype")
LAST_VERDICT_TIME = Gauge("skyqa_last_verdict_timestamp_seconds", "Unix time of the last published verdict")
CONSUMER_LAG = Gauge("skyqa_consumer_lag_messages", "Events not yet consumed, by partition", ["topic", "partition"])
TRITON_SECONDS = Histogram(
    "skyqa_triton_request_duration_seconds", "Triton inference request wall time", ["model"], buckets=LATENCY_BUCKETS
)
TRITON_FAILURES = Counter("skyqa_triton_failures_total", "Failed Triton inference requests", ["model"])
MODEL_INFO = Gauge("skyqa_model_info", "Model versions in use (value 1)", ["desom1_version", "desom2_version"])
MODEL_RELOADS = Counter("skyqa_model_reloads_total",
                        "Model versions swapped in without a restart ('reloaded') or that failed to load ('failed')",
                        ["outcome"])
for _outcome in ("reloaded", "failed"):
    MODEL_RELOADS.labels(outcome=_outcome)
READY = Gauge("skyqa_ready", "1 when broker and inference backend are reachable and models loaded")


def expose_label_series() -> None:
    """Create every label's verdict series at 0, so rate()/increase() see an exposure's first BT, not its second."""
    for label in Label:
        VERDICTS.labels(label=label.value)
