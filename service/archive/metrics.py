"""Prometheus metrics of the archive writers (the daemon's directory sink and `skyqa archive consume`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECORDS_WRITTEN = Counter("skyqa_archive_records_written_total",
                          "Verdicts and dead letters committed to the archive, by kind", ["kind"])
WRITE_FAILURES = Counter("skyqa_archive_write_failures_total",
                         "Archive writes that failed and will be retried, by exception type", ["error"])
LAST_COMMIT = Gauge("skyqa_archive_last_commit_timestamp_seconds", "Unix time of the last archive commit")
