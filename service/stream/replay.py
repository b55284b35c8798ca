"""`replay`: publish one new-exposure event per file of a night directory, as the acquisition system would.

URIs are file:// (the daemon must be allowed to read the directory: fetch.allowed_roots), checksums sha256,
obs_time the moment of publication (a replayed night is "read out" now, so latencies stay meaningful).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from astropy.io import fits
from kafka import KafkaProducer

from skyqa.service.pipeline.exposure import ExposureError, exposure_id
from skyqa.service.stream.events import ExposureEvent
from skyqa.service.stream.fetch import file_checksum

FITS_SUFFIXES = (".fits", ".fits.fz", ".fz")


def night_events(night_dir: Path, instrument: str = "MegaCam") -> Iterator[ExposureEvent]:
    """Lazily, so each event's obs_time is the moment it is generated (just before publication).
    A file without a readable header or a valid exposure id has no event to give: skipped, said on stderr."""
    for path in sorted(p for p in night_dir.iterdir() if p.is_file() and p.name.endswith(FITS_SUFFIXES)):
        try:
            checksum, exposure = file_checksum(path), exposure_id(path, fits.getheader(path, 0))
        except (ExposureError, OSError, ValueError) as error:
            print(f"replay: skipping {path}: {error}", file=sys.stderr)
            continue
        yield ExposureEvent(schema_version=1, exposure_id=exposure, uri=path.resolve().as_uri(),
                            instrument=instrument, obs_time=datetime.now(UTC), checksum=checksum)


def publish(events: Iterator[ExposureEvent], bootstrap_servers: str, topic: str, interval_s: float = 0.0) -> int:
    """Publishes (key = exposure id) and waits for every acknowledgement; returns the number sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), acks="all")
    sent = 0
    try:
        for event in events:
            producer.send(topic, key=event.exposure_id.encode(), value=event.to_bytes()).get(timeout=30)
            sent += 1
            if interval_s:
                time.sleep(interval_s)
    finally:
        producer.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night_dir", type=Path)
    parser.add_argument("--bootstrap-servers", default=None, help="default: settings.kafka.bootstrap_servers")
    parser.add_argument("--topic", default=None, help="default: settings.kafka.events_topic")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between events")
    args = parser.parse_args(argv)
    from skyqa.service.config import load_settings

    kafka = load_settings().kafka
    sent = publish(night_events(args.night_dir), args.bootstrap_servers or kafka.bootstrap_servers,
                   args.topic or kafka.events_topic, args.interval)
    print(f"published {sent} events from {args.night_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
