"""Jittered exponential backoff for retrying an event across iterations of a source loop.

tenacity's Retrying owns its loop; here the loop must go back to `consumer.poll()` between attempts (so the
consumer stays in its group during a long inference outage), so only the delay schedule is needed.
"""

from __future__ import annotations

import random
import threading


class Backoff:
    """Equal-jitter exponential delays: d/2 + uniform(0, d/2) with d = min(cap, base * 2**n); reset on success."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def wait(self, stop: threading.Event) -> None:
        """Sleep the next delay, returning early when `stop` is set (SIGTERM during an outage)."""
        ceiling = min(self.cap_s, self.base_s * 2**self.failures)
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        self.failures = min(self.failures + 1, 30)
        stop.wait(delay)
