"""Grafana dashboards for skyqa, generated from one list of panel definitions per dashboard.

The JSON under dashboards/ is what Grafana provisions (and what the k8s ConfigMaps carry); it is committed and
must equal this module's output (tests/test_ops_dashboards.py): edit here, then run
`.venv/bin/python deploy/grafana/build.py`. Metric names come from service/stream/metrics.py, alert thresholds
drawn as lines are read from deploy/prometheus/skyqa-rules.yaml so they cannot drift from the alerts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"
RULES = HERE.parent / "prometheus" / "skyqa-rules.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
TONIGHT = "12h"  # "tonight" = the last 12 hours, whatever the dashboard's time range
# Verdict colours, one per skyqa.service.labels.Label value (checked by the tests).
LABEL_COLOURS = {
    "Good": "green",
    "BT": "orange",
    "RBT": "red",
    "BSeeing": "purple",
    "BadFocus": "blue",
    "BGP": "yellow",
    "Unlabelled": "text",
}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False  # tables and stats: one value per series, not a time series


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries | stat | table | bargauge
    targets: tuple[Target, ...]
    description: str = ""
    unit: str = "short"
    width: int = 12
    height: int = 8
    stacked: bool = False
    bars: bool = False
    thresholds: tuple[tuple[float, str], ...] = ()  # (value, colour) drawn as lines / stat colours
    label_colours: bool = False  # colour series by verdict label
    options: dict[str, Any] = field(default_factory=dict)


def alert_threshold(metric: str) -> float:
    """The `> N` threshold the alert rules apply to a `min_over_time(<metric>[..])` gauge."""
    m = re.search(rf"min_over_time\({re.escape(metric)}\[\w+\]\)\s*>\s*([0-9.]+)", RULES.read_text())
    if not m:
        raise LookupError(f"no threshold for {metric} in {RULES}")
    return float(m.group(1))


def zero_if_none(expr: str) -> str:
    """Failure counters only exist after the first failure: show 0, not "No data", while there is none."""
    return f"({expr}) or vector(0)"


def quantiles(metric: str, by: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> tuple[Target, ...]:
    """One target per quantile of a histogram, grouped by `by` (the same recipe for every latency panel)."""
    legend = " ".join(f"{{{{{b.strip()}}}}}" for b in by.split(",") if b.strip())
    return tuple(
        Target(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{RATE}])))", f"p{round(q * 100)} {legend}")
        for q in qs
    )


def nightly_quality() -> list[Panel]:
    fwhm, elong = alert_threshold("skyqa_last_exposure_fwhm_arcsec"), alert_threshold("skyqa_last_exposure_elongation_ratio")
    labelled = 'skyqa_verdicts_total{label!="Unlabelled"}'
    return [
        Panel(
            "Verdicts per label",
            "timeseries",
            (Target(f"sum by (label) (increase(skyqa_verdicts_total[{RATE}]))", "{{label}}"),),
            "Exposures classified per interval, by curated DESOM-2 label.",
            width=16,
            stacked=True,
            bars=True,
            label_colours=True,
        ),
        Panel(
            "Usable tonight",
            "stat",
            (
                Target(
                    f'(sum(increase(skyqa_verdicts_total{{label="Good"}}[{TONIGHT}])) or vector(0))'
                    f" / sum(increase({labelled}[{TONIGHT}]))",
                    "usable",
                    instant=True,
                ),
            ),
            f"Good / labelled verdicts over the last {TONIGHT} (Unlabelled cells cannot say).",
            unit="percentunit",
            width=4,
            thresholds=((0, "red"), (0.5, "orange"), (0.8, "green")),
        ),
        Panel(
            "Last verdict",
            "stat",
            (Target("max(skyqa_last_verdict_timestamp_seconds) * 1000", "last verdict", instant=True),),
            "Time of the most recent published verdict, any replica.",
            unit="dateTimeFromNow",
            width=4,
        ),
        Panel(
            "Fraction usable (rolling 1 h)",
            "timeseries",
            (
                Target(
                    '(sum(increase(skyqa_verdicts_total{label="Good"}[1h])) or vector(0))'
                    f" / sum(increase({labelled}[1h]))",
                    "usable",
                ),
            ),
            unit="percentunit",
            width=8,
            options={"min": 0, "max": 1},
        ),
        Panel(
            "Seeing: median FWHM",
            "timeseries",
            (Target("skyqa_last_exposure_fwhm_arcsec", "{{instance}}"),),
            f"Median FWHM of each classified exposure; the line is the SkyqaBadSeeing threshold ({fwhm}).",
            unit="suffix: arcsec",
            width=8,
            thresholds=((0, "green"), (fwhm, "red")),
        ),
        Panel(
            "Tracking: median elongation a/b",
            "timeseries",
            (Target("skyqa_last_exposure_elongation_ratio", "{{instance}}"),),
            f"Median source elongation of each exposure; the line is the SkyqaBadTracking threshold ({elong}).",
            width=8,
            thresholds=((0, "green"), (elong, "red")),
        ),
        Panel(
            "Verdicts tonight by label",
            "table",
            (Target(f"sum by (label) (increase(skyqa_verdicts_total[{TONIGHT}]))", "{{label}}", instant=True),),
            f"Counts over the last {TONIGHT}.",
            width=8,
            options={"sort_by": "Value"},
        ),
        Panel(
            "Sky background and novelty",
            "timeseries",
            (
                Target("skyqa_last_exposure_background_adu", "background {{instance}}"),
                Target("skyqa_last_exposure_background_rms_adu", "sky rms {{instance}}"),
                Target("skyqa_last_exposure_novelty", "novelty {{instance}}"),
                Target("skyqa_last_exposure_background_structure", "structure {{instance}}"),
            ),
            "Median sky level and RMS (ADU), distance of the exposure to its DESOM-2 prototype (a jump in novelty is"
            " an exposure unlike the training set) and background structure (pixel-noise units; above the background"
            " check's limit the exposure is BGP).",
            width=8,
        ),
        Panel(
            "DESOM-2 cell occupancy tonight",
            "table",
            (
                Target(
                    f"sort_desc(sum by (cell_x, cell_y) (increase(skyqa_verdict_cells_total[{TONIGHT}])))",
                    "{{cell_x}},{{cell_y}}",
                    instant=True,
                ),
            ),
            "Exposures per DESOM-2 cell (grid 20x20, k = y * 20 + x) over the last 12h, most occupied first.",
            width=8,
            options={"sort_by": "Value", "cell_colours": True},
        ),
    ]


def service_health() -> list[Panel]:
    return [
        Panel(
            "Throughput",
            "timeseries",
            (
                Target(f"sum(rate(skyqa_events_consumed_total[{RATE}]))", "events consumed"),
                Target(f"sum(rate(skyqa_verdicts_total[{RATE}]))", "verdicts published"),
                Target(zero_if_none(f"sum(rate(skyqa_dead_letters_total[{RATE}]))"), "dead-lettered"),
                Target(zero_if_none(f"sum(rate(skyqa_duplicate_verdicts_total[{RATE}]))"), "duplicates"),
            ),
            unit="ops",
        ),
        Panel(
            "Replicas ready",
            "stat",
            (
                Target("sum(skyqa_ready)", "ready", instant=True),
                Target('count(up{job="skyqa"} == 1)', "scraped", instant=True),
            ),
            "Replicas reporting skyqa_ready=1 / daemon targets Prometheus scrapes.",
            width=6,
        ),
        Panel(
            "Models in use",
            "table",
            (Target("count by (desom1_version, desom2_version) (skyqa_model_info)", "", instant=True),),
            "DESOM-1/DESOM-2 versions and how many replicas run them (more than one row = a rollout).",
            width=6,
        ),
        Panel(
            "Model reloads",
            "timeseries",
            (Target(zero_if_none(f"sum by (outcome) (increase(skyqa_model_reloads_total[{RATE}]))"), "{{outcome}}"),),
            "Published model versions swapped in without a restart (reloaded), or refused while the loaded ones"
            " keep serving (failed: see the daemon's model_reload_failed log line).",
            bars=True,
            width=6,
        ),
        Panel(
            "End-to-end latency",
            "timeseries",
            quantiles("skyqa_end_to_end_latency_seconds", "since"),
            "From end of readout (since=event) or from receipt (since=receipt) to the verdict acknowledged by the"
            " broker. Objective: p95 since event under 60 s (SkyqaEndToEndLatencyHigh).",
            unit="s",
            thresholds=((0, "green"), (60, "red")),
        ),
        Panel(
            "Stage latency p95",
            "timeseries",
            quantiles("skyqa_stage_duration_seconds", "stage", (0.95,)),
            unit="s",
        ),
        Panel(
            "Consumer lag",
            "timeseries",
            (
                Target(
                    "sum by (topic, partition) (max by (topic, partition) (skyqa_consumer_lag_messages))",
                    "{{topic}}/{{partition}}",
                ),
            ),
            "Events not yet consumed per partition (Kafka source only); KEDA adds replicas on it.",
            stacked=True,
        ),
        Panel(
            "Dead letters by reason",
            "timeseries",
            (Target(zero_if_none(f"sum by (reason) (increase(skyqa_dead_letters_total[{RATE}]))"), "{{reason}}"),),
            "Events sent to skyqa.deadletter per interval (SkyqaDeadLetters).",
            bars=True,
            stacked=True,
        ),
        Panel(
            "Unexpected processing errors",
            "timeseries",
            (Target(zero_if_none(f"sum by (outcome) (increase(skyqa_processing_errors_total[{RATE}]))"), "{{outcome}}"),),
            "Exceptions no known reason covers: retried up to serve.max_processing_attempts, then dead-lettered as "
            "processing_error (SkyqaProcessingErrors).",
            bars=True,
            stacked=True,
        ),
        Panel(
            "Errors by stage",
            "timeseries",
            (Target(zero_if_none(f"sum by (stage, reason) (increase(skyqa_errors_total[{RATE}]))"), "{{stage}}: {{reason}}"),),
            bars=True,
            stacked=True,
        ),
        Panel(
            "Triton request latency",
            "timeseries",
            quantiles("skyqa_triton_request_duration_seconds", "model", (0.5, 0.95))
            + (
                Target(
                    f"sum by (model) (rate(nv_inference_queue_duration_us[{RATE}]))"
                    f" / sum by (model) (rate(nv_inference_request_success[{RATE}])) / 1e6",
                    "server queue {{model}}",
                ),
                Target(
                    f"sum by (model) (rate(nv_inference_compute_infer_duration_us[{RATE}]))"
                    f" / sum by (model) (rate(nv_inference_request_success[{RATE}])) / 1e6",
                    "server compute {{model}}",
                ),
            ),
            "Client-side percentiles (daemon) and Triton's own mean queue/compute time per request.",
            unit="s",
        ),
        Panel(
            "Triton failures",
            "timeseries",
            (
                Target(zero_if_none(f"sum by (model) (rate(skyqa_triton_failures_total[{RATE}]))"), "client {{model}}"),
                Target(zero_if_none(f"sum by (model) (rate(nv_inference_request_failure[{RATE}]))"), "server {{model}}"),
            ),
            "Failed inference requests per second, seen by the daemon and by Triton (SkyqaTritonFailing).",
            unit="reqps",
        ),
        Panel(
            "Detections and cutouts per exposure (median)",
            "timeseries",
            (
                Target(f"histogram_quantile(0.5, sum by (le) (rate(skyqa_exposure_detections_bucket[{RATE}])))", "detections"),
                Target(f"histogram_quantile(0.5, sum by (le) (rate(skyqa_exposure_cutouts_bucket[{RATE}])))", "cutouts"),
            ),
            "A collapse in detections with normal latency usually means clouds or a closed dome, not a bug.",
        ),
    ]


DASHBOARDS: dict[str, tuple[str, str, str]] = {
    # file stem: (uid, title, description)
    "nightly-quality": ("skyqa-nightly-quality", "skyqa / Nightly quality", "What the sky and telescope did tonight"),
    "service-health": ("skyqa-service-health", "skyqa / Service health", "Is the verdict pipeline keeping up"),
}
PANELS = {"nightly-quality": nightly_quality, "service-health": service_health}


def _field_config(p: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit}
    if p.kind == "timeseries":
        custom: dict[str, Any] = {"drawStyle": "bars" if p.bars else "line", "fillOpacity": 60 if p.bars else 10,
                                  "lineWidth": 1, "showPoints": "never", "spanNulls": False}
        if p.stacked:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        if p.thresholds:
            custom["thresholdsStyle"] = {"mode": "dashed"}
        defaults["custom"] = custom
    for key in ("min", "max"):
        if key in p.options:
            defaults[key] = p.options[key]
    if p.thresholds:
        steps = [{"color": c, "value": None if i == 0 else v} for i, (v, c) in enumerate(p.thresholds)]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        if p.kind == "stat":
            defaults["color"] = {"mode": "thresholds"}
    if p.options.get("cell_colours"):
        defaults["custom"] = {"cellOptions": {"type": "color-background", "mode": "gradient"}}
        defaults["color"] = {"mode": "continuous-BlPu"}
    overrides = []
    if p.label_colours:
        overrides = [
            {"matcher": {"id": "byName", "options": label},
             "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}]}
            for label, colour in LABEL_COLOURS.items()
        ]
    return {"defaults": defaults, "overrides": overrides}


def _panel_options(p: Panel) -> dict[str, Any]:
    if p.kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if p.kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    if p.kind == "table":
        sort = [{"displayName": p.options["sort_by"], "desc": True}] if "sort_by" in p.options else []
        return {"showHeader": True, "sortBy": sort}
    return {}


def _transformations(p: Panel) -> list[dict[str, Any]]:
    """Tables: one row per series, label columns + Value (Prometheus 'table' format, time column hidden)."""
    if p.kind != "table":
        return []
    return [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]


def render_panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for i, t in enumerate(p.targets):
        target: dict[str, Any] = {"datasource": DATASOURCE, "refId": chr(ord("A") + i), "expr": t.expr,
                                  "legendFormat": t.legend, "instant": t.instant, "range": not t.instant}
        if p.kind == "table":
            target["format"] = "table"
        targets.append(target)
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": _field_config(p),
        "options": _panel_options(p),
        "transformations": _transformations(p),
    }


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right on Grafana's 24-column grid, wrapping to a new row when a panel does not fit."""
    out, x, y, row_h = [], 0, 0, 0
    for pid, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(render_panel(p, pid, x, y))
        x, row_h = x + p.width, max(row_h, p.height)
    return out


def dashboard(stem: str) -> dict[str, Any]:
    uid, title, description = DASHBOARDS[stem]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["skyqa"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-12h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                 "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}
            ]
        },
        "annotations": {
            "list": [
                {"name": "skyqa alerts", "datasource": DATASOURCE, "enable": True, "iconColor": "red",
                 "expr": 'ALERTS{alertname=~"Skyqa.*", alertstate="firing"}', "step": "60s",
                 "titleFormat": "{{alertname}}", "tagKeys": "severity,team"}
            ]
        },
        "panels": layout(PANELS[stem]()),
    }


def render(stem: str) -> str:
    return json.dumps(dashboard(stem), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard differs from the output")
    args = p.parse_args(argv)
    stale = []
    for stem in DASHBOARDS:
        path = OUT_DIR / f"{stem}.json"
        text = render(stem)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards {stale}: run python deploy/grafana/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
