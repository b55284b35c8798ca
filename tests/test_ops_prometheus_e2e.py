"""A real Prometheus scrapes a real daemon through a simulated night: dashboards have data, the tracking alert fires.

The daemon runs embedded (`skyqa serve --source dir --inference local`); Prometheus (the Debian binary)
scrapes it every second and evaluates the shipped rules, time-compressed 60x by deploy/prometheus/build.py
(15 min windows become 15 s; thresholds untouched). The night: good exposures and one unreadable file, then a
streak of badly trailed (RBT) exposures. SkyqaBadTracking also fires on the measured elongation, so the test
does not depend on how well the model labels the streak.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.script_module import load_script

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TIME_SCALE = 60  # minutes of the rules -> seconds of the test
N_GOOD, N_BAD = 4, 6
# Queries over metrics an embedded daemon (dir source, local inference) cannot have: Kafka lag, Triton.
EMBEDDED_MISSING = ("skyqa_consumer_lag_messages", "skyqa_triton_request_duration_seconds", "nv_inference_")
WINDOW = "5m"  # Grafana's $__rate_interval: longer than the whole run, so every observation counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: tuple[subprocess.Popen, ...] = (),
             logs: tuple[Path, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                tail = "\n".join(log.read_text()[-3000:] for log in logs)
                pytest.fail(f"{p.args[0]} exited with {p.returncode} while waiting for {what}:\n{tail}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    tail = "\n".join(log.read_text()[-3000:] for log in logs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = http_get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        doc = json.loads(body or b"{}")
        assert status == 200 and doc.get("status") == "success", f"{expr}: {status} {doc}"
        return doc["data"]["result"]

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        _, body = http_get(f"{self.base}/api/v1/alerts")
        alerts = json.loads(body or b"{}").get("data", {}).get("alerts", [])
        return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def drop(files: list[Path], watch_dir: Path, staging: Path) -> None:
    """Appear atomically in the watched directory, like the acquisition system's writes."""
    for f in files:
        tmp = staging / f.name
        shutil.copyfile(f, tmp)
        os.replace(tmp, watch_dir / f.name)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Prom, Path, Path, list[Path]]]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus missing: run `make system-deps` (Debian package prometheus)")
    skyqa = Path(sys.executable).with_name("skyqa")
    from skyqa.simulator.night import simulate_night

    watch, staging, night = tmp_path / "incoming", tmp_path / "staging", tmp_path / "night"
    for d in (watch, staging):
        d.mkdir()
    simulate_night(night / "good", N_GOOD, seed=11, size="tiny", classes={"Good": 1.0}, progress=False)
    simulate_night(night / "bad", N_BAD, seed=12, size="tiny", classes={"RBT": 1.0}, progress=False)

    build = load_script(ROOT / "deploy" / "prometheus" / "build.py", "skyqa_ops_prometheus_build")
    rules = tmp_path / "rules.yaml"
    assert build.main(["--time-scale", str(TIME_SCALE), "--out", str(rules)]) == 0

    daemon_port, prom_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYQA_") or k == "SKYQA_DATA_DIR"}
    env.update({
        "SKYQA_SERVE__HTTP_PORT": str(daemon_port),
        "SKYQA_SERVE__HTTP_HOST": "127.0.0.1",
        "SKYQA_SERVE__WATCH_INTERVAL_S": "0.5",
        "SKYQA_ARCHIVE__URL": f"sqlite:///{tmp_path / 'archive.db'}",
        "SKYQA_MODELS__REPOSITORY": str(ROOT / "models"),
        "SKYQA_WORKERS": "1",
        "SKYQA_INFERENCE__THREADS": "1",
    })
    daemon_log, prom_log = tmp_path / "daemon.log", tmp_path / "prometheus.log"
    daemon = subprocess.Popen(
        [str(skyqa), "serve", "--source", "dir", "--inference", "local", "--watch-dir", str(watch)],
        cwd=tmp_path, env=env, stdout=daemon_log.open("wb"), stderr=subprocess.STDOUT,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "skyqa", "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}]}],
    }))
    prom = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        cwd=tmp_path, stdout=prom_log.open("wb"), stderr=subprocess.STDOUT,
    )
    procs, logs = (daemon, prom), (daemon_log, prom_log)
    try:
        base = f"http://127.0.0.1:{prom_port}"
        wait_for("daemon /healthz", lambda: http_get(f"http://127.0.0.1:{daemon_port}/healthz")[0] == 200, 180, procs, logs)
        wait_for("prometheus ready", lambda: http_get(f"{base}/-/ready")[0] == 200, 60, procs, logs)
        api = Prom(base)
        wait_for("first scrape", lambda: api.value('up{job="skyqa"}') == 1, 30, procs, logs)
        http_get(f"http://127.0.0.1:{daemon_port}/readyz")  # readiness is computed on demand: set skyqa_ready
        yield api, watch, staging, [*sorted((night / "good").glob("*.fits*")), *sorted((night / "bad").glob("*.fits*"))]
    finally:
        for p in procs:
            stop(p)


def outputs(api: Prom) -> float:
    return api.value("sum(skyqa_verdicts_total)") + api.value("sum(skyqa_dead_letters_total)")


def panel_targets() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel["targets"]:
                out.append((path.stem, panel["title"], t["expr"].replace("$__rate_interval", WINDOW)))
    return out


def test_night_through_prometheus(stack: tuple[Prom, Path, Path, list[Path]]) -> None:
    api, watch, staging, exposures = stack
    good, bad = exposures[:N_GOOD], exposures[N_GOOD:]
    junk = exposures[0].parent.parent / "corrupt.fits"
    junk.write_bytes(b"SIMPLE  =  this is not a FITS file" + bytes(4000))

    drop([*good, junk], watch, staging)
    wait_for("good exposures processed", lambda: outputs(api) >= N_GOOD + 1, 300)
    time.sleep(3)  # a few rule evaluations on the good part of the night
    # Round stars never trip the elongation signal (the verdict signal depends on the model: not asserted).
    assert not api.query('max_over_time(ALERTS{alertname="SkyqaBadTracking", signal="elongation"}[10m])')
    drop(bad, watch, staging)
    wait_for("bad-tracking streak processed", lambda: outputs(api) >= N_GOOD + 1 + N_BAD, 300)

    firing = wait_for("SkyqaBadTracking firing", lambda: api.firing("SkyqaBadTracking"), 60)
    assert firing[0]["labels"]["signal"] in {"verdicts", "elongation"}
    assert firing[0]["annotations"]["runbook_url"].endswith("#skyqabadtracking")

    # Every dashboard query returns data (those needing Kafka or Triton still must be valid PromQL).
    empty = []
    for dashboard, title, expr in panel_targets():
        result = api.query(expr)
        if any(m in expr for m in EMBEDDED_MISSING):
            continue
        if not any(math.isfinite(float(r["value"][1])) for r in result):
            empty.append(f"{dashboard} / {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    # The unreadable file produced a real dead-letter series (not only the dashboards' zero fallback), and
    # SkyqaDeadLetters caught it although the series was born at 1 (its `unless offset` branch).
    assert api.query("sum by (reason) (skyqa_dead_letters_total)")[0]["metric"].get("reason")
    assert api.query('max_over_time(ALERTS{alertname="SkyqaDeadLetters", alertstate="firing"}[10m])')
