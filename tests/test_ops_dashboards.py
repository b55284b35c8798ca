"""Grafana dashboards: committed JSON = generator output, valid PromQL, only real metric names, all of them used."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.script_module import load_script

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
METRICS_PY = ROOT / "service" / "stream" / "metrics.py"
# Not ours but legitimately queried: scrape health, alert state, Triton's own exporter.
FOREIGN_METRIC = re.compile(r"^(up|ALERTS|nv_\w+)$")
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "increase", "histogram_quantile", "max", "min", "count", "or", "and", "unless",
    "on", "ignoring", "vector", "sort_desc", "le", "bool", "offset", "group_left", "group_right", "deriv", "time",
}


def load_build() -> ModuleType:
    return load_script(GRAFANA / "build.py", "skyqa_grafana_build")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def exprs() -> list[str]:
    return [t["expr"] for d in dashboards().values() for p in d["panels"] for t in p["targets"]]


def defined_metrics() -> set[str]:
    """Exported sample names of service/stream/metrics.py (histograms expand to _bucket/_sum/_count)."""
    names: set[str] = set()
    for kind, name in re.findall(r'\b(Counter|Gauge|Histogram)\(\s*"(\w+)"', METRICS_PY.read_text()):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "Histogram" else {name}
    return names


def used_metrics(expr: str) -> set[str]:
    no_strings = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    no_strings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", no_strings)
    words = re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", no_strings)  # not the "e6" of 1e6
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("__")}


def test_committed_json_is_generator_output() -> None:
    res = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert set(dashboards()) == {"nightly-quality", "service-health"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query (as a recording rule, Grafana's $__rate_interval made concrete)."""
    if shutil.which("promtool") is None:
        pytest.fail("promtool missing: run `make system-deps`")
    rules = [{"record": f"dashboard:q{i}", "expr": e.replace("$__rate_interval", "5m")} for i, e in enumerate(exprs())]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_metric_names_exist_and_all_are_shown() -> None:
    defined = defined_metrics()
    used = set().union(*(used_metrics(e) for e in exprs()))
    assert {m for m in used if not FOREIGN_METRIC.match(m)} <= defined, "unknown metric names"
    # Every daemon metric is on a dashboard (histograms through _bucket, except the _sum/_count twins).
    shown = {m for m in defined if not m.endswith(("_sum", "_count"))}
    assert shown - used == set(), "metrics no dashboard shows"


def test_panels_layout_and_datasource() -> None:
    for name, d in dashboards().items():
        assert d["uid"].startswith("skyqa-") and d["schemaVersion"] >= 36
        assert [v["name"] for v in d["templating"]["list"]] == ["datasource"]
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for p in d["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not (area & cells), f"{name}: {p['title']} overlaps"
            cells |= area
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])


def test_required_panels() -> None:
    titles = {name: " | ".join(p["title"] for p in d["panels"]).lower() for name, d in dashboards().items()}
    for word in ("verdicts per label", "usable", "fwhm", "elongation", "last verdict", "cell occupancy"):
        assert word in titles["nightly-quality"], word
    for word in ("throughput", "latency", "consumer lag", "dead letters", "triton", "errors by stage"):
        assert word in titles["service-health"], word


def test_label_colours_cover_every_label() -> None:
    from skyqa.service.labels import Label

    build = load_build()
    assert set(build.LABEL_COLOURS) == {label.value for label in Label}


def test_thresholds_come_from_the_alert_rules() -> None:
    build = load_build()
    rules = (ROOT / "deploy" / "prometheus" / "skyqa-rules.yaml").read_text()
    for metric in ("skyqa_last_exposure_fwhm_arcsec", "skyqa_last_exposure_elongation_ratio"):
        value = build.alert_threshold(metric)
        assert re.search(rf"{metric}\[\w+\]\)\s*>\s*{value:g}\b", rules), metric
        assert any(
            s.get("value") == value
            for d in dashboards().values()
            for p in d["panels"]
            if any(metric in t["expr"] for t in p["targets"])
            for s in p["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        ), metric


def test_provisioning_files() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "skyqa.yaml").read_text())
    assert prov["apiVersion"] == 1 and prov["providers"][0]["type"] == "file"
    assert prov["providers"][0]["options"]["path"]
