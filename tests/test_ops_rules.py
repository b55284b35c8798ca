"""Alert rules: promtool accepts them, every alert has a firing and a quiet unit test, annotations and runbook.

The unit tests themselves live in deploy/prometheus/tests/*.yaml (promtool's format); this module runs them
and checks their coverage, so an alert added without tests fails `make test`.
"""

from __future__ import annotations

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
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "skyqa-rules.yaml"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
RUNBOOK_PREFIX = "https://github.com/skyqa/skyqa/blob/main/deploy/RUNBOOK.md#"


def load_build() -> ModuleType:
    return load_script(PROM / "build.py", "skyqa_prometheus_build")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool missing: run `make system-deps` (Debian package prometheus)")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT)


def alerts() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules() -> None:
    res = promtool("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    n_rules = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {n_rules} rules found" in res.stdout


def test_promtool_unit_tests_pass() -> None:
    files = sorted(str(p) for p in (PROM / "tests").glob("*.yaml"))
    assert files
    res = promtool("test", "rules", *files)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_fires_and_stays_quiet_in_a_unit_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in (PROM / "tests").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../skyqa-rules.yaml"], path
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"
    assert (fires | quiet) <= names, "tests for alerts that do not exist"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_metadata(rule: dict[str, Any]) -> None:
    assert rule["alert"].startswith("Skyqa")
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["labels"]["team"] in {"sre", "observers"}
    ann = rule["annotations"]
    assert ann["summary"] and ann["description"]
    assert "$value" in ann["description"] or "$labels" in ann["description"], "description must carry the values"
    url = ann["runbook_url"]
    assert url == RUNBOOK_PREFIX + rule["alert"].lower()
    headings = {m.lower() for m in re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), flags=re.M)}
    assert rule["alert"].lower() in headings, f"no '## {rule['alert']}' section in deploy/RUNBOOK.md"


def test_generated_prometheus_rule_is_up_to_date() -> None:
    res = subprocess.run([sys.executable, str(PROM / "build.py"), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr


def test_time_scaled_copy(tmp_path: Path) -> None:
    build = load_build()
    assert build.scale_expr('rate(x[15m]) and deriv(y[15m:1m]) unless z offset 10m', 60) == (
        "rate(x[15s]) and deriv(y[15s:1s]) unless z offset 10s"
    )
    assert build.scale_expr("increase(x[1h30m])", 60) == "increase(x[90s])"
    assert build.scale_expr("rate(x[1m])", 120) == "rate(x[500ms])"
    fast = tmp_path / "fast.yaml"
    assert build.main(["--time-scale", "60", "--out", str(fast)]) == 0
    res = promtool("check", "rules", str(fast))
    assert res.returncode == 0, res.stdout + res.stderr
    src, out = alerts(), [r for g in yaml.safe_load(fast.read_text())["groups"] for r in g["rules"]]
    assert [r["alert"] for r in out] == [r["alert"] for r in src]
    for a, b in zip(src, out):
        # Only durations change: thresholds, labels and annotations are the source's.
        assert re.sub(r"\[[^\]]*\]|offset \w+", "", a["expr"]) == re.sub(r"\[[^\]]*\]|offset \w+", "", b["expr"])
        assert (a["labels"], a["annotations"]) == (b["labels"], b["annotations"])
